"""Which files may be sources: patterns, roots, names."""

from __future__ import annotations

import pytest

from jobcast.sources.paths import (
    WatchError,
    matches,
    outside_roots,
    parse_patterns,
    resolve_roots,
    source_name,
)


def test_a_pattern_is_split_at_its_first_wildcard_and_matched_part_by_part(tmp_path):
    (p,) = parse_patterns([f"{tmp_path}/streams/*.typescript"])
    assert p.dir == f"{tmp_path}/streams" and p.parts == ("*.typescript",)
    assert p.match(f"{tmp_path}/streams/INFRA.typescript")
    # `*` never crosses a directory, nor climbs out of one.
    assert not p.match(f"{tmp_path}/streams/sub/INFRA.typescript")
    assert not p.match(f"{tmp_path}/other/INFRA.typescript")
    (deep,) = parse_patterns([f"{tmp_path}/*/logs/*.typescript"])
    assert deep.dir == str(tmp_path) and deep.recursive
    assert deep.match(f"{tmp_path}/a/logs/x.typescript")


def test_relative_patterns_are_from_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (p,) = parse_patterns(["streams/*.ts"])
    assert p.dir == f"{tmp_path}/streams"


@pytest.mark.parametrize("pattern", ["/srv/../etc/*", "streams/../../x/*.ts", "../*.ts"])
def test_dotdot_is_refused(pattern):
    with pytest.raises(WatchError, match=r"`\.\.` is refused"):
        parse_patterns([pattern])


def test_roots_default_to_the_patterns_directories_and_bound_them(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    patterns = parse_patterns([f"{tmp_path}/a/*.ts"])
    assert resolve_roots([], patterns) == [f"{tmp_path}/a"]
    assert resolve_roots([str(tmp_path)], patterns) == [str(tmp_path)]
    with pytest.raises(WatchError, match="outside every watch root"):
        resolve_roots([f"{tmp_path}/b"], patterns)
    with pytest.raises(WatchError, match=r"`\.\.` is refused"):
        resolve_roots([f"{tmp_path}/b/../a"], patterns)


def test_a_pattern_directory_that_is_a_symlink_out_of_the_root_is_refused(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "elsewhere")
    patterns = parse_patterns([f"{tmp_path}/root/link/*.ts"])
    with pytest.raises(WatchError, match="elsewhere is not under one"):
        resolve_roots([f"{tmp_path}/root"], patterns)


def test_outside_roots_compares_whole_components():
    assert not outside_roots("/srv/streams/x", ["/srv/streams"])
    assert outside_roots("/srv/streams-evil/x", ["/srv/streams"])
    assert not outside_roots("/anything", ["/"])


def test_timing_files_are_never_sources():
    patterns = parse_patterns(["/s/*"])
    assert matches("/s/INFRA.typescript", patterns)
    assert not matches("/s/INFRA.timing", patterns)


@pytest.mark.parametrize(
    "path, name",
    [
        ("/s/INFRA.typescript", "INFRA"),
        ("/s/my session.typescript", "my-session"),
        ("/s/a.b.typescript", "a.b"),
        ("/s/noext", "noext"),
        ("/s/1st.typescript", None),
        ("/s/" + "x" * 100 + ".ts", "x" * 64),
    ],
)
def test_a_source_is_named_after_its_file(path, name):
    assert source_name(path) == name
