"""The one output path of every command: `--format`, `--output`, `--field`, `--quiet` and
`--full`.

`Output` checks the options before any work is done and, after it, writes the file
(atomically) and prints the results in the chosen format, each as its type's view
(`report.views`) lays it out.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Generic, TypeVar

from rich.segment import Segments

from mlpcli import session
from mlpcli.errors import UsageError, wrapped
from mlpcli.report import fields, files, records, style, terminal, views
from mlpcli.report.records import Record
from mlpcli.report.view import View

R = TypeVar("R")


class Format(StrEnum):
    """What a command prints on stdout."""

    TABLE = "table"  # Rich tables, for people
    JSON = "json"  # one line of JSON per result
    CSV = "csv"


@dataclass(frozen=True)
class Output:
    """The output options a user gave one command."""

    format: Format = Format.TABLE
    path: Path | None = None
    fields: Sequence[str] | None = None  # --field paths; several give tab-separated values
    quiet: bool = False
    full: bool = False  # --full: the tables show every value

    def check(self, kind: type, inputs: Sequence[Path | None] = ()) -> None:
        """UsageError, before any work, for an output file that results of type `kind`
        cannot be written to, or that cannot be written."""
        if self.path is not None:
            files.check_output(self.path, views.of(kind).suffixes, inputs)

    def emit(self, results: Sequence[R], printed: bool = False) -> None:
        """Write the file, then print the results in the chosen format (none with `quiet`,
        nor when the command `printed` them as it ran); over several ranks, rank 0 alone (any
        command run under torchrun). No results (no type to show): nothing."""
        if not session.current().speaks() or not results:
            return
        view = views.of(type(results[0]))
        texts = _Texts(view, results)
        chosen = texts.fields(self.fields) if self.fields else None  # a bad path: nothing written
        suffix = "" if self.path is None else self.path.suffix.lower()
        if self.path is not None and suffix not in view.streams:
            if suffix in view.files:
                files.write_atomic(self.path, view.files[suffix](results))
            elif suffix == ".csv":
                files.write_atomic(self.path, texts.csv.encode())
            else:
                with files.atomic(self.path) as file:
                    for block in records.json_blocks(texts.records):
                        file.write(block.encode())
        if not self.quiet and not printed:
            with terminal.to_stdout():
                self._print(view, results, texts, chosen)

    def check_fields(self, results: Sequence[R]) -> None:
        """UsageError for a `--field` path that the results do not have (before a file that
        was written as they ran is put in place)."""
        if self.fields and results:
            _Texts(views.of(type(results[0])), results).fields(self.fields)

    def _print(
        self, view: View[R], results: Sequence[R], texts: _Texts[R], chosen: str | None
    ) -> None:
        if chosen is not None:
            sys.stdout.write(chosen)
        elif self.format is Format.JSON:
            for block in records.json_blocks(texts.records):
                sys.stdout.write(block)
        elif self.format is Format.CSV:
            sys.stdout.write(texts.csv)
        elif view.text is not None:
            text, console = view.text(results), terminal.stdout_console()
            if console.is_terminal:  # lines wrapped at words
                lines = text.splitlines()
                sys.stdout.write("".join(wrapped(line, console.width) + "\n" for line in lines))
            else:  # one line each, for scripts
                sys.stdout.write(text)
        else:
            console = terminal.stdout_console()
            shown = view.shown(results, self.full)
            laid = shown.laid(console.width)  # as Rich would render it, in pieces:
            for piece in style.pieces(laid, console):  # lines of a block fit the width
                console.print(piece, crop=not isinstance(piece, Segments))
            for note in shown.notes:
                terminal.note(note)


class _Texts(Generic[R]):
    """The results as JSON records and CSV, each made at most once."""

    def __init__(self, view: View[R], results: Sequence[R]) -> None:
        self.view = view
        self.results = results

    @functools.cached_property
    def records(self) -> list[Record]:
        return [self.view.record(result) for result in self.results]

    def fields(self, paths: Sequence[str]) -> str:
        """A line per result: the values at `paths`, tab-separated."""
        return "".join(
            "\t".join(fields.text(fields.select(record, path)) for path in paths) + "\n"
            for record in self.records
        )

    @functools.cached_property
    def csv(self) -> str:
        return records.csv_text(self.view.rows(self.results))


def refuse_several(output: Output, suffix: str, count: int) -> None:
    """UsageError when a file of `suffix`, which holds one result, would get `count`."""
    if output.path is not None and output.path.suffix.lower() == suffix and count > 1:
        raise UsageError(
            f"--output {output.path}: a {suffix} file holds one output; use .json or .csv"
        )
