"""The runner's pure policies: output cap, batch window, UTF-8 cuts, signal names, outcomes."""

from __future__ import annotations

import signal

import pytest

from jobcast.errors import BadRequest
from jobcast.models import JobStatus
from jobcast.runner.limits import (
    MAX_WINDOW_MS,
    OutputCap,
    batch_window,
    describe_exit,
    outcome,
    parse_signal,
    shell_failure,
    signal_name,
    utf8_boundary,
)


def test_output_cap_keeps_exactly_the_limit_and_crosses_once():
    cap = OutputCap(10)
    assert cap.take(4) == (4, False)
    assert cap.take(6) == (6, False)
    assert cap.take(3) == (0, True)
    assert cap.take(5) == (0, False)
    assert (cap.kept, cap.dropped) == (10, 8)


def test_output_cap_splits_the_chunk_that_crosses():
    cap = OutputCap(10)
    assert cap.take(7) == (7, False)
    assert cap.take(7) == (3, True)
    assert (cap.kept, cap.dropped) == (10, 4)
    assert "output limit of 10 bytes reached" in cap.notice()


def test_output_cap_zero_keeps_nothing():
    cap = OutputCap(0)
    assert cap.take(1) == (0, True)
    assert cap.take(0) == (0, False)
    assert (cap.kept, cap.dropped) == (0, 1)


def test_batch_window_grows_with_followers_up_to_the_ceiling():
    assert batch_window(10, 0) == batch_window(10, 1) == pytest.approx(0.010)
    assert batch_window(10, 2) == pytest.approx(0.020)
    assert batch_window(5, 8) == pytest.approx(0.020)
    assert batch_window(10, 1000) == pytest.approx(MAX_WINDOW_MS / 1000)
    windows = [batch_window(10, n) for n in range(1, 200)]
    assert windows == sorted(windows)


def test_batch_window_edges():
    assert batch_window(0, 100) == 0.0
    assert batch_window(200, 1000) == pytest.approx(0.2)  # an operator's larger base is kept


@pytest.mark.parametrize(
    ("data", "cut"),
    [
        (b"", 0),
        (b"abc", 3),
        ("héllo".encode(), 6),
        ("é".encode()[:1], 0),
        (b"ab" + "€".encode()[:1], 2),
        (b"ab" + "€".encode()[:2], 2),
        (b"ab" + "€".encode(), 5),
        (b"a" + "😀".encode()[:3], 1),
        (b"a" + "😀".encode(), 5),
        (b"\x80\x80\x80\x80", 4),  # not UTF-8: nothing held back
        (b"\xff", 1),
    ],
)
def test_utf8_boundary(data, cut):
    assert utf8_boundary(data) == cut
    assert len(data) - cut <= 3


@pytest.mark.parametrize("given", ["INT", "int", "SIGINT", "sigint", " Int ", "2", 2])
def test_parse_signal_forms(given):
    assert parse_signal(given) == (signal.SIGINT, "SIGINT")


def test_parse_signal_real_time_number():
    number = signal.SIGRTMIN + 2
    assert parse_signal(number) == (number, "SIGRTMIN+2")


@pytest.mark.parametrize("given", ["NOPE", "SIG", "", "0", "-9", str(signal.NSIG), "9.5"])
def test_parse_signal_unknown_lists_valid_names(given):
    with pytest.raises(BadRequest) as err:
        parse_signal(given)
    assert "unknown signal" in err.value.message
    assert "TERM" in err.value.message and "INT" in err.value.message
    assert "IOT" not in err.value.message  # aliases stay out of the list


def test_signal_name():
    assert signal_name(9) == "SIGKILL"
    assert signal_name(signal.SIGRTMIN + 1) == "SIGRTMIN+1"


def test_outcome_of_an_exit_nobody_caused():
    assert outcome(0, None, None) == (JobStatus.SUCCEEDED, 0, None, None)
    assert outcome(3, None, None) == (JobStatus.FAILED, 3, None, "exited with code 3")
    killed = outcome(-signal.SIGKILL, None, None)
    assert killed == (JobStatus.FAILED, None, "SIGKILL", "killed by SIGKILL")


def test_outcome_when_the_runner_ended_the_job():
    cancelled = outcome(-signal.SIGTERM, JobStatus.CANCELLED, "cancelled by request")
    assert cancelled == (JobStatus.CANCELLED, None, "SIGTERM", "cancelled by request")
    # Ending gracefully on SIGTERM is still the runner's doing.
    assert outcome(0, JobStatus.TIMED_OUT, "late").status is JobStatus.TIMED_OUT


def test_describe_exit():
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-15) == "killed by SIGTERM"


@pytest.mark.parametrize(
    ("rc", "line", "want"),
    [
        (127, "/bin/sh: 1: foo: not found", "command not found: foo"),  # dash
        (127, "/bin/sh: line 1: foo: command not found", "command not found: foo"),  # bash
        (127, "/bin/sh: foo: not found", "command not found: foo"),  # busybox
        (
            126,
            "/bin/sh: 1: ./x: Permission denied",
            "command not executable: ./x (Permission denied)",
        ),
        (
            126,
            "/bin/sh: line 1: /tmp: Is a directory",
            "command not executable: /tmp (Is a directory)",
        ),
    ],
)
def test_a_shells_complaint_names_the_command(rc, line, want):
    failure = shell_failure("/bin/sh", rc, b"earlier output\n" + line.encode() + b"\r\n")
    assert failure is not None and failure.message == want
    assert failure.exit_code == rc


@pytest.mark.parametrize(
    ("rc", "tail"),
    [
        (1, b"/bin/sh: 1: foo: not found\n"),  # the shell went on, and failed later
        (127, b"/bin/sh: 1: foo: not found\nits own words\n"),
        (127, b"bash: foo: command not found\n"),  # another shell, inside the job
        (127, b""),
        (126, b"/bin/sh: 1: foo: not found\n"),
    ],
)
def test_anything_else_is_the_jobs_own_business(rc, tail):
    assert shell_failure("/bin/sh", rc, tail) is None
