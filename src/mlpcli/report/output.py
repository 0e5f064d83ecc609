"""The one output path of every command: `--format`, `--output`, `--field` and `--quiet`.

A command describes how its results are laid out (`Layout`); `Output` checks the options before
any work is done and, after it, writes the file (atomically) and prints the chosen view.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Generic, TypeVar

from rich.console import RenderableType
from rich.segment import Segments

from mlpcli.errors import ReaderGone, UsageError, wrapped
from mlpcli.ranks import process
from mlpcli.report import fields, files, records, render, style, terminal
from mlpcli.report.records import Record, Rows

R = TypeVar("R")


@contextlib.contextmanager
def to_stdout() -> Iterator[None]:
    """Around writing results: a reader that went away becomes ReaderGone (exit 0, quietly)."""
    try:
        yield
    except BrokenPipeError:
        raise ReaderGone from None


class Format(StrEnum):
    """What a command prints on stdout."""

    TABLE = "table"  # Rich tables, for people
    JSON = "json"  # one line of JSON per result
    CSV = "csv"


@dataclass(frozen=True)
class Layout(Generic[R]):
    """How one command's results look in each format and file."""

    record: Callable[[R], Record]  # JSON, `--field` and .json files
    rows: Callable[[Sequence[R]], list[Rows]]  # CSV and .csv files: the tables of all results
    # for people: a Rich view (or plain text) of the results at a width, and notes for stderr
    table: Callable[[Sequence[R], int], tuple[RenderableType | str, list[str]]]
    files: Mapping[str, Callable[[Sequence[R]], bytes]] = field(default_factory=dict)  # .npy
    streams: tuple[str, ...] = ()  # suffixes of files the command writes as it runs

    @classmethod
    def each(
        cls,
        record: Callable[[R], Record],
        rows: Callable[[R], Rows],
        view: Callable[[R], RenderableType],
    ) -> Layout[R]:
        """A layout of results that are laid out one by one (a table each, a blank line apart)."""

        def table(results: Sequence[R], _: int) -> tuple[RenderableType, list[str]]:
            return render.stacked([view(result) for result in results]), []

        return cls(record, records.each(rows), table)


@dataclass(frozen=True)
class Output:
    """The output options a user gave one command."""

    format: Format = Format.TABLE
    path: Path | None = None
    fields: Sequence[str] | None = None  # --field paths; several give tab-separated values
    quiet: bool = False

    def check(self, layout: Layout[R], inputs: Sequence[Path | None] = ()) -> None:
        """UsageError, before any work, for an output file that cannot be written."""
        if self.path is not None:
            suffixes = dict.fromkeys((".json", ".csv", *layout.streams, *layout.files))
            files.check_output(self.path, suffixes, inputs)

    def emit(self, layout: Layout[R], results: Sequence[R], printed: bool = False) -> None:
        """Write the file, then print the results in the chosen view (none with `quiet`, nor
        when the command `printed` them as it ran); over several ranks, rank 0 alone (any
        command run under torchrun)."""
        if not process.speaks():
            return
        texts = _Texts(layout, results)
        chosen = texts.fields(self.fields) if self.fields else None  # a bad path: nothing written
        suffix = "" if self.path is None else self.path.suffix.lower()
        if self.path is not None and suffix not in layout.streams:
            if suffix in layout.files:
                files.write_atomic(self.path, layout.files[suffix](results))
            elif suffix == ".csv":
                files.write_atomic(self.path, texts.csv.encode())
            else:
                with files.atomic(self.path) as file:
                    for block in records.json_blocks(texts.records):
                        file.write(block.encode())
        if not self.quiet and not printed:
            with to_stdout():
                self._print(layout, results, texts, chosen)

    def check_fields(self, layout: Layout[R], results: Sequence[R]) -> None:
        """UsageError for a `--field` path that the results do not have (before a file that
        was written as they ran is put in place)."""
        if self.fields:
            _Texts(layout, results).fields(self.fields)

    def _print(
        self, layout: Layout[R], results: Sequence[R], texts: _Texts[R], chosen: str | None
    ) -> None:
        if chosen is not None:
            sys.stdout.write(chosen)
        elif self.format is Format.JSON:
            for block in records.json_blocks(texts.records):
                sys.stdout.write(block)
        elif self.format is Format.CSV:
            sys.stdout.write(texts.csv)
        else:
            console = terminal.stdout_console()
            view, notes = layout.table(results, console.width)
            if isinstance(view, str) and console.is_terminal:  # lines wrapped at words
                sys.stdout.write(
                    "".join(wrapped(line, console.width) + "\n" for line in view.splitlines())
                )
            elif isinstance(view, str):  # one line each, for scripts
                sys.stdout.write(view)
            else:
                for piece in style.pieces(view, console):  # lines of a block fit the width
                    console.print(piece, crop=not isinstance(piece, Segments))
            for note in notes:
                terminal.note(note)


class _Texts(Generic[R]):
    """The results as JSON records and CSV, each made at most once."""

    def __init__(self, layout: Layout[R], results: Sequence[R]) -> None:
        self.layout = layout
        self.results = results

    @functools.cached_property
    def records(self) -> list[Record]:
        return [self.layout.record(result) for result in self.results]

    def fields(self, paths: Sequence[str]) -> str:
        """A line per result: the values at `paths`, tab-separated."""
        return "".join(
            "\t".join(fields.text(fields.select(record, path)) for path in paths) + "\n"
            for record in self.records
        )

    @functools.cached_property
    def csv(self) -> str:
        return records.csv_text(self.layout.rows(self.results))


def refuse_several(output: Output, suffix: str, count: int) -> None:
    """UsageError when a file of `suffix`, which holds one result, would get `count`."""
    if output.path is not None and output.path.suffix.lower() == suffix and count > 1:
        raise UsageError(
            f"--output {output.path}: a {suffix} file holds one output; use .json or .csv"
        )
