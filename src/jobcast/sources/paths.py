"""Which files may be sources: `--watch` patterns, the `watch_roots` they must stay under, and the
name a file's stream gets. Pure but for resolving paths (`os.path.realpath`)."""

from __future__ import annotations

import fnmatch
import os
import re

__all__ = [
    "Pattern",
    "WatchError",
    "matches",
    "outside_roots",
    "parse_patterns",
    "resolve_roots",
    "source_name",
]

_MAGIC = re.compile(r"[*?[]")
_BAD_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.-]")
#: names a `.timing` file beside a typescript: never a source itself
TIMING_SUFFIX = ".timing"


class WatchError(ValueError):
    """A `--watch` pattern or `watch_roots` entry that cannot be used; the message says why."""


class Pattern:
    """One `--watch` glob, made absolute: `dir` is its part without wildcards (what is
    watched), `parts` its components below `dir`, matched one by one (`*` never crosses `/`)."""

    __slots__ = ("dir", "parts", "text")

    def __init__(self, text: str, dir: str, parts: tuple[str, ...]) -> None:
        self.text, self.dir, self.parts = text, dir, parts

    def match(self, path: str) -> bool:
        rel = os.path.relpath(path, self.dir)
        if rel.startswith(".."):
            return False
        got = tuple(rel.split(os.sep))
        return len(got) == len(self.parts) and all(
            fnmatch.fnmatchcase(g, p) for g, p in zip(got, self.parts, strict=True)
        )

    @property
    def recursive(self) -> bool:
        return len(self.parts) > 1


def parse_patterns(patterns: list[str]) -> list[Pattern]:
    """Each pattern made absolute (from the current directory), split at its first wildcard.

    Raises:
        WatchError: a pattern with a `..` component, or without a wildcard-free directory.
    """
    out = []
    for text in patterns:
        raw = os.path.expanduser(text)
        if ".." in raw.split(os.sep):
            raise WatchError(
                f"--watch {text!r}: `..` is refused in a pattern; name the directory directly"
            )
        parts = os.path.abspath(raw).split(os.sep)
        fixed = next((i for i, p in enumerate(parts) if _MAGIC.search(p)), len(parts) - 1)
        base = os.sep.join(parts[:fixed]) or os.sep
        if fixed == 0 or not parts[fixed]:
            raise WatchError(f"--watch {text!r}: a pattern must name files in a directory")
        out.append(Pattern(text, base, tuple(parts[fixed:])))
    return out


def resolve_roots(roots: list[str], patterns: list[Pattern]) -> list[str]:
    """The allowed directories, symlinks resolved: `roots`, or (none given) each pattern's own
    directory; and a check that every pattern's directory is under one of them.

    Raises:
        WatchError: a root with `..`, or a pattern outside every root.
    """
    for root in roots:
        if ".." in os.path.expanduser(root).split(os.sep):
            raise WatchError(f"watch_roots {root!r}: `..` is refused; name the directory directly")
    resolved = [os.path.realpath(os.path.expanduser(r)) for r in roots or [p.dir for p in patterns]]
    for p in patterns:
        where = os.path.realpath(p.dir)
        if not any(_under(where, r) for r in resolved):
            raise WatchError(
                f"--watch {p.text!r} is outside every watch root ({', '.join(resolved)}): "
                f"its directory {where} is not under one; add a root to `watch_roots` "
                "(--watch-roots) or watch another directory"
            )
    return resolved


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def outside_roots(real: str, roots: list[str]) -> bool:
    """Whether a resolved path lies outside every root (a symlink out of them, say)."""
    return not any(_under(real, r) for r in roots)


def matches(path: str, patterns: list[Pattern]) -> bool:
    """Whether `path` (absolute) is a source: matched by a pattern, and not a `.timing` file."""
    return not path.endswith(TIMING_SUFFIX) and any(p.match(path) for p in patterns)


def source_name(path: str) -> str | None:
    """The stream's name: the file's name without its last suffix (`INFRA.typescript` ->
    `INFRA`), other characters than a job name takes made `-`; None if no valid name is left."""
    stem = os.path.basename(path)
    stem = os.path.splitext(stem)[0] or stem
    name = _BAD_NAME_CHAR.sub("-", stem)[:64]
    return name if name[:1].isascii() and name[:1].isalpha() else None
