"""Stats: what followers were sent, added up whatever comes and goes, and the rates."""

from __future__ import annotations

from jobcast.api.state import Follower, Stats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_totals_never_go_back_when_followers_leave_and_rates_are_per_job() -> None:
    clock = Clock()
    stats = Stats(clock=clock)
    a, b, other = (
        Follower("sse", "j1", None),
        Follower("ws", "j1", None),
        Follower("log", "j2", None),
    )
    for f in (a, b, other):
        stats.add(f)
    stats.sample()
    a.events_sent, a.bytes_sent = 10, 1000
    b.events_sent, b.bytes_sent = 5, 500
    clock.now += 2
    assert (stats.events_sent, stats.bytes_sent) == (15, 1500)
    total, jobs = stats.rates()
    assert total == {"window_seconds": 2.0, "events_per_second": 7.5, "bytes_per_second": 750.0}
    assert jobs["j1"] == {"clients": 2, "events_per_second": 7.5, "bytes_per_second": 750.0}
    assert jobs["j2"] == {"clients": 1, "events_per_second": 0.0, "bytes_per_second": 0.0}

    stats.remove(a)
    stats.remove(a)  # twice: counted once
    assert (stats.events_sent, stats.bytes_sent) == (15, 1500)
    assert stats.rates()[1]["j1"]["events_per_second"] == 7.5  # a's part stays in j1's rate
    stats.remove(b)
    stats.remove(other)
    assert stats.per_job == {} and stats.rates()[1] == {}
    assert (stats.events_sent, stats.bytes_sent) == (15, 1500)


def test_no_rate_before_the_first_sample() -> None:
    stats = Stats()
    f = Follower("sse", "j", None)
    stats.add(f)
    f.events_sent = 3
    total, jobs = stats.rates()
    assert total == {"window_seconds": 0.0, "events_per_second": 0.0, "bytes_per_second": 0.0}
    assert jobs == {"j": {"clients": 1, "events_per_second": 0.0, "bytes_per_second": 0.0}}
