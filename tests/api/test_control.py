"""Who may drive a job, and the terminal replies a viewer's emulator sends by itself."""

from __future__ import annotations

import pytest

from jobcast.api.auth import Identity
from jobcast.api.control import check_control, may_control, strip_terminal_replies
from jobcast.api.state import State
from jobcast.config import Scope
from jobcast.errors import Forbidden, MissingScope
from jobcast.models import Job, JobStatus


def job(shared: str) -> Job:
    return Job(id="j1", status=JobStatus.RUNNING, argv=["bash"], created_at=0, shared=shared)  # type: ignore[arg-type]


def state(owner: str) -> State:
    s = State.__new__(State)
    s.owners = {"j1": owner}
    return s


ALICE = Identity.of("alice", [Scope.READ, Scope.CONTROL], {})
BOB = Identity.of("bob", [Scope.READ, Scope.CONTROL], {})
ROOT = Identity.of("root", [Scope.ADMIN], {})
VIEWER = Identity.of("viewer", [Scope.READ], {})
ALICE_READ_ONLY = Identity.of("alice", [Scope.READ], {})


def test_shared_control_lets_any_control_token_drive():
    s = state("alice")
    assert [may_control(s, i, job("control")) for i in (ALICE, BOB, ROOT, VIEWER)] == [
        True,
        True,
        True,
        False,
    ]


def test_shared_view_lets_only_the_creator_and_admins_drive():
    s = state("alice")
    shared = job("view")
    assert [may_control(s, i, shared) for i in (ALICE, BOB, ROOT, VIEWER)] == [
        True,
        False,
        True,
        False,
    ]
    # The creator needs `control` too: the name alone drives nothing.
    assert not may_control(s, ALICE_READ_ONLY, shared)
    with pytest.raises(Forbidden, match="view-only"):
        check_control(s, BOB, shared, "typing")
    with pytest.raises(MissingScope, match="`control`"):
        check_control(s, VIEWER, shared, "typing")


@pytest.mark.parametrize(
    "reply",
    [
        b"\x1b[?1;2c",  # DA1
        b"\x1b[?62;1;6;9;15;22c",
        b"\x1b[>0;276;0c",  # DA2
        b"\x1b[12;40R",  # cursor position
        b"\x1b[?12;40R",  # DECXCPR
        b"\x1b[0n",  # status
        b"\x1b[8;24;80t",  # window size report
        b"\x1b[I\x1b[O",  # focus in, out
        b"\x1b]11;rgb:0000/0000/0000\x1b\\",  # OSC colour, ST
        b"\x1b]10;rgb:ffff/ffff/ffff\x07",  # OSC colour, BEL
        b"\x1bP>|xterm(388)\x1b\\",  # XTVERSION
        b"\x1bP!|00000000\x1b\\",  # DA3
        b"\x1b[?1;2c\x1b[>0;276;0c\x1b[12;40R",  # several at once
    ],
)
def test_terminal_replies_are_stripped(reply: bytes) -> None:
    assert strip_terminal_replies(reply) == b""


@pytest.mark.parametrize(
    "typed",
    [b"ls -l\r", b"\x03", b"\x1b[A", b"\x1b[1;5C", b"\x1bOP", b"\x1b[200~paste\x1b[201~", b"\t"],
)
def test_what_a_person_types_is_kept(typed: bytes) -> None:
    assert strip_terminal_replies(typed) == typed
    assert strip_terminal_replies(b"\x1b[?1;2c" + typed) == typed
