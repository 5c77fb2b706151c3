"""Paste storage: by sha256, stored once, written whole, and no ref or hash names another path."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from jobcast.models import JobSpec
from jobcast.pastes import Pastes, parse_hash, parse_ref, ref_of

GOOD = hashlib.sha256(b"x").hexdigest()


def test_put_stores_by_hash_once_privately(tmp_path):
    p = Pastes(tmp_path)
    p.open()
    digest, new = p.put(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest() and new
    assert p.put(b"hello") == (digest, False)
    assert p.get(digest) == b"hello"
    assert [f.name for f in p.root.iterdir()] == [digest]  # no temp file left behind
    assert stat.S_IMODE(os.stat(p.root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(p.root / digest).st_mode) == 0o600


def test_a_stale_temp_file_is_swept_at_open(tmp_path):
    p = Pastes(tmp_path)
    p.open()
    (p.root / f".tmp-{GOOD}-1-2").write_bytes(b"half")
    Pastes(tmp_path).open()
    assert list(p.root.iterdir()) == []


@pytest.mark.parametrize(
    "bad", ["", "../../etc/passwd", GOOD.upper(), GOOD[:-1], GOOD + "0", f"{GOOD[:-1]}/", "g" * 64]
)
def test_only_64_lowercase_hex_digits_are_a_hash(tmp_path, bad):
    with pytest.raises(ValueError, match="not a paste hash"):
        parse_hash(bad)
    with pytest.raises(ValueError, match="not a paste hash"):
        Pastes(tmp_path).path(bad)
    with pytest.raises(ValueError, match="not a paste ref"):
        parse_ref(ref_of(bad))


def test_refs_resolve_to_files_in_order_or_name_the_missing_one(tmp_path):
    p = Pastes(tmp_path)
    p.open()
    a, _ = p.put(b"a")
    b, _ = p.put(b"b")
    assert p.resolve([ref_of(b), ref_of(a)]) == [str(p.root / b), str(p.root / a)]
    with pytest.raises(LookupError) as e:
        p.resolve([ref_of(a), ref_of(GOOD)])
    assert e.value.args == (ref_of(GOOD),)


def test_jobspec_refuses_malformed_refs_and_context_stdin_without_a_file():
    with pytest.raises(ValueError, match="is not a paste ref"):
        JobSpec(argv=["cat"], context=["ctx://paste/../../x"])
    with pytest.raises(ValueError, match="context_stdin"):
        JobSpec(argv=["cat"], context_stdin=True)
    with pytest.raises(ValueError, match="context_stdin"):
        JobSpec(argv=["cat"], context=[ref_of(GOOD)], context_stdin=True, stdin=True)
    assert JobSpec(argv=["cat"], context=[ref_of(GOOD)], context_stdin=True).context_stdin
