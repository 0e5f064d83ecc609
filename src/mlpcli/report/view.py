"""How results of one type show themselves (`View`): a JSON record each, CSV tables, the files
written whole, and for people a Rich view laid out when it is rendered, at the width it is
given (`Fits`), or plain text. Each result type's view is in `report.views`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

from mlpcli.report import records
from mlpcli.report.records import Record, Rows
from mlpcli.report.render import stacked

R = TypeVar("R")

Laid = tuple[RenderableType, list[str]]  # a view at a width, and its notes on what it left out


class Fits:
    """A view laid out when it is rendered, at the width it is given (`lay(width)`); its notes
    on what it left out to fit are there once it has been."""

    def __init__(self, lay: Callable[[int], Laid]) -> None:
        self.lay = lay
        self.notes: list[str] = []

    def laid(self, width: int) -> RenderableType:
        """The view at `width` (its notes kept)."""
        view, self.notes = self.lay(width)
        return view

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.laid(options.max_width)


@dataclass(frozen=True)
class View(Generic[R]):
    """How results of type `kind` look in each format and file."""

    kind: type[R]
    record: Callable[[R], Record]  # JSON, `--field` and .json files
    rows: Callable[[Sequence[R]], list[Rows]]  # CSV and .csv files: the tables of all results
    # for people: the results' tables at a width (`full`: every value) and the notes on what
    # was left out to fit; or `text`, plain, the same at any width
    table: Callable[[Sequence[R], int, bool], Laid] | None = None
    text: Callable[[Sequence[R]], str] | None = None
    files: Mapping[str, Callable[[Sequence[R]], bytes]] = field(default_factory=dict)  # .npy
    streams: tuple[str, ...] = ()  # suffixes of files the results are written to as they come

    def shown(self, results: Sequence[R], full: bool = False) -> Fits:
        """The results' tables, laid out when they are rendered."""
        table = self.table
        assert table is not None
        return Fits(lambda width: table(results, width, full))

    @property
    def suffixes(self) -> list[str]:
        """Every suffix of a file the results can be written to."""
        return list(dict.fromkeys((".json", ".csv", *self.streams, *self.files)))

    @classmethod
    def each(
        cls,
        kind: type[R],
        record: Callable[[R], Record],
        rows: Callable[[R], Rows],
        table: Callable[[R], RenderableType],
    ) -> View[R]:
        """A view of results laid out one by one: a record, a CSV table and a Rich table each,
        the tables a blank line apart (at any width)."""
        return cls(
            kind,
            record,
            records.each(rows),
            lambda results, _, __: (stacked([table(result) for result in results]), []),
        )
