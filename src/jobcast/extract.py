"""Extractors: named regular expressions run over a job's complete lines (see `lines`).

Patterns are RE2's (the `google-re2` binding): matching takes time linear in the line whatever the
pattern, so no pattern (`(a+)+$` included) can stall the server; RE2 has no backreferences or
lookaround, and says so when a pattern uses them. A pattern never matches across lines; `^` and `$`
match at each line's start and end.

A match's `value` is the group named `value` if the pattern has one, else its first group, else the
whole match; `groups` are all its groups in order (null for one that did not take part).

Pure: text in, matches out; no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from .lines import Batch

__all__ = [
    "Extractor",
    "Match",
    "Pattern",
    "Patterns",
    "compile_pattern",
    "find",
    "unique_names",
]

#: the most of a line an `extraction` event carries (characters)
EVENT_LINE = 4096


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False
    options.never_nl = True
    return options


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern; raises ValueError saying what RE2 found wrong with it."""
    options = _options()
    try:
        return re2.compile("(?m)" + pattern, options=options)
    except re2.error as e:
        arg = e.args[0] if e.args else e
        reason = arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)
        reason = reason.replace("(?m)", "", 1)
        raise ValueError(
            f"{reason} (patterns are RE2's: no backreferences or lookaround)"
        ) from None


class Extractor(BaseModel):
    """A named pattern: each complete line of output it matches gives an `extraction` event."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    pattern: str = Field(
        ...,
        min_length=1,
        max_length=4096,
        description="An RE2 regular expression, matched against each line's text; the group "
        "named `value` (or else the first group, or else the whole match) is the value.",
    )
    stream: Literal["stdout", "stderr", "both"] = Field(
        "both", description="The stream whose lines are matched."
    )
    once: bool = Field(False, description="Stop after the first match.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compile_pattern(value)
        except ValueError as e:
            # A custom error: shown as is, without pydantic's "Value error, " before it.
            raise PydanticCustomError(
                "bad_pattern",
                "bad pattern {pattern}: {reason}",
                {"pattern": repr(value[:200]), "reason": str(e)},
            ) from None
        return value


def unique_names(extractors: list[Extractor]) -> list[Extractor]:
    names = [x.name for x in extractors]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise ValueError(f"extractor names must be unique; given twice: {', '.join(doubles)}")
    return extractors


@dataclass(slots=True)
class Match:
    name: str
    value: str
    groups: list[str | None]
    line: str
    line_no: int
    stream: str
    truncated: bool = False

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "value": self.value,
            "groups": self.groups,
            "line": self.line[:EVENT_LINE],
            "line_no": self.line_no,
            "stream": self.stream,
        }
        if self.truncated:
            out["truncated"] = True
        return out


class Pattern:
    """An extractor ready to run: its compiled pattern, and whether it is spent (`once`)."""

    def __init__(self, spec: Extractor) -> None:
        self.spec = spec
        self.regex = compile_pattern(spec.pattern)
        self.value_group = self.regex.groupindex.get("value", 1 if self.regex.groups else 0)
        self.spent = False

    def applies(self, stream: str) -> bool:
        return not self.spent and self.spec.stream in ("both", stream)


def _set_options() -> Any:
    # Only a first pass: whatever matches within a line matches in the whole text too, and the
    # pattern itself then finds where. Without never_nl and with longest_match, RE2's set runs
    # its faster DFA.
    options = re2.Options()
    options.log_errors = False
    options.longest_match = True
    return options


class Patterns:
    """Extractors ready to run together: one pass of all of them (an RE2 set) tells which match
    at all in a batch of lines, and only those are run on their own, for their matches' places
    and groups. Most batches match none, so most output is scanned once, not once per pattern."""

    def __init__(self, specs: list[Extractor]) -> None:
        self.patterns = [Pattern(x) for x in specs]
        self._set: Any = None
        if len(self.patterns) > 1:
            self._set = re2.Set.SearchSet(_set_options())
            for p in self.patterns:
                self._set.Add("(?m)" + p.spec.pattern)
            self._set.Compile()

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def find(self, batch: Batch) -> Iterator[Match]:
        if not batch.count or not batch.data:
            return iter(())
        if self._set is None:
            return find(self.patterns, batch)
        return self._find_in_pieces(batch)

    def _find_in_pieces(self, batch: Batch) -> Iterator[Match]:
        # The set pass tells which patterns match, not where: run over the whole batch, a
        # pattern it found would then scan all of it again (RE2's ~1.5 ms a MB) for one line.
        # Over pieces cut at line ends, it scans again only the piece the set found it in.
        text = batch.data
        view = memoryview(text)
        start, line, counted = 0, 0, 0
        while True:
            end = text.find(b"\n", start + PIECE)
            end = len(text) if end < 0 else end
            hits = self._set.Match(view[start:end])
            if hits:
                line += text.count(b"\n", counted, start)
                counted = start
                ranks = sorted(hits)
                patterns = [self.patterns[i] for i in ranks]
                yield from find(patterns, batch, ranks, start, end, line)
            if end >= len(text):
                return
            start = end + 1


#: the set pass's piece of a batch, in bytes (then on to the end of the line it ends in)
PIECE = 64 * 1024


def find(
    patterns: list[Pattern],
    batch: Batch,
    ranks: list[int] | None = None,
    start: int = 0,
    end: int | None = None,
    line: int = 0,
) -> Iterator[Match]:
    """Each pattern's first match in each line of `batch`, in line order (then pattern order);
    only in `batch.data[start:end]` when given (cut at line ends; `line`: the index in the batch
    of the line at `start`)."""
    if not batch.count or not batch.data:
        return
    found: list[tuple[int, int, Match]] = []
    text = batch.data
    stop = len(text) if end is None else end
    for i, p in enumerate(patterns):
        rank = ranks[i] if ranks is not None else i
        if not p.applies(batch.stream):
            continue
        # A match's line is counted from the last one's, in C, only as far as the match: a
        # batch with a match near its start is not walked line by line to its end.
        last_line, index, counted = -1, line, start
        for m in p.regex.finditer(text, start, stop):
            at = m.start()
            index += text.count(b"\n", counted, at)
            counted = at
            if index == last_line:
                continue  # one match per line and pattern
            last_line = index
            begin = text.rfind(b"\n", 0, at) + 1
            end = text.find(b"\n", at)
            end = len(text) if end < 0 else end
            no = batch.first + index
            value = m.group(p.value_group)
            groups = [g.decode(errors="replace") if g is not None else None for g in m.groups()]
            found.append(
                (
                    no,
                    rank,
                    Match(
                        p.spec.name,
                        value.decode(errors="replace") if value is not None else "",
                        groups,
                        text[begin : min(end, begin + 4 * EVENT_LINE)].decode(errors="replace"),
                        no,
                        batch.stream,
                        no in batch.truncated,
                    ),
                )
            )
            if p.spec.once:
                p.spent = True
                break
    found.sort(key=lambda f: (f[0], f[1]))
    for _, _, match in found:
        yield match
