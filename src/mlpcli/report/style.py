"""The one table style of every command, and tables that leave out whole columns to fit a
terminal's width rather than cut or fold the numbers in them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment, Segments
from rich.table import Table
from rich.text import Text

GAP = 2  # characters between two columns: a column's right padding and the rule's space


@dataclass(frozen=True)
class Column:
    """A column of a table: its heading, its alignment, and whether its cells may fold
    (names and overrides may; numbers and shapes never)."""

    name: str
    justify: Literal["left", "right"] = "left"
    fold: bool = False
    min_width: int = 0  # a folding column's narrowest: its widest word


def table(title: str | None = None, width: int = 0) -> Table:
    """An empty table in mlpcli's style: the title on the left, a rule under the headings,
    columns GAP apart, no box; as wide as its title where `width` allows, so that the title
    folds only past the terminal's width."""
    return Table(
        title=title,
        min_width=min(len(title), width) if title and width else None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),  # pad_edge=False would drop the last space, but Rich 13.7
        # then widens a right-justified column: one spare column keeps every Rich alike
    )


class LongTable:
    """A table of right-justified columns of known widths that may have a million rows (`run
    --full`): Rich lays out its headings and first RICH_ROWS rows, and the rest follow as lines
    in the same columns, at the speed of plain text. The first column is the dim row label."""

    RICH_ROWS = 50

    def __init__(
        self,
        title: str,
        headings: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[int],
    ) -> None:
        self.title = title
        self.headings = headings
        self.rows = rows
        self.widths = widths

    BLOCK_ROWS = 10_000  # rows past the first printed at once (`pieces`)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.pieces(console)

    def pieces(self, console: Console) -> Iterator[RenderableType]:
        """The title, the Rich table of the headings and first rows, then the other rows in
        blocks of lines, each formatted as it is reached."""
        yield Text(self.title, style="table.title")
        head = table()
        for index, (heading, width) in enumerate(zip(self.headings, self.widths, strict=True)):
            head.add_column(
                heading, justify="right", no_wrap=True, min_width=width,
                style="dim" if index == 0 else None,
            )  # fmt: skip
        for row in self.rows[: self.RICH_ROWS]:
            head.add_row(*row)
        yield head
        label = console.get_style("dim")
        cells = " " + "".join(f" {{:>{width}}} " for width in self.widths[1:])
        rest = iter(itertools.islice(self.rows, self.RICH_ROWS, None))  # formatted as printed
        while block := list(itertools.islice(rest, self.BLOCK_ROWS)):
            if console.color_system is None:  # no style to show: the block as one text
                text = "".join(
                    f"{row[0].rjust(self.widths[0])}{cells.format(*row[1:])}\n" for row in block
                )
                yield Segments([Segment(text)])
                continue
            lines = (
                (Segment(row[0].rjust(self.widths[0]), label), Segment(cells.format(*row[1:])))
                for row in block
            )
            yield Segments(segment for pair in lines for segment in (*pair, Segment.line()))


def pieces(view: RenderableType, console: Console) -> Iterator[RenderableType]:
    """`view` as renderables to print one after another: a Group's in turn, a LongTable's
    head and then its rows in blocks. Rich holds what one `print` makes until it ends, so
    `run --full` of a million rows printed whole held every line (1.2 GB for 2 million)."""
    if isinstance(view, Group):
        for part in view.renderables:
            yield from pieces(part, console)
    elif isinstance(view, LongTable):
        yield from view.pieces(console)
    else:
        yield view


def fitted(
    title: str | None,
    columns: Sequence[Column],
    rows: Sequence[Sequence[RenderableType]],
    droppable: Sequence[str],
    width: int,
) -> tuple[Table, list[str]]:
    """The table of `columns` and `rows`, leaving out the `droppable` columns, in that order,
    while it is wider than `width`; and the names of those left out."""
    dropped: list[str] = []
    built = filled(title, columns, rows, width, dropped)
    for name in droppable:
        if natural_width(built) <= width:
            break
        dropped.append(name)
        built = filled(title, columns, rows, width, dropped)
    return built, dropped


def left_out(what: str, dropped: Sequence[str], width: int) -> str:
    """The note on the columns `fitted` left out of the `what` table."""
    return (
        f"left out the {what} table's columns {', '.join(dropped)} to fit {width} columns "
        "(a wider COLUMNS, or --format json or csv: everything)"
    )


def header(name: str, pairs: Sequence[str], width: int) -> Text:
    """`name` in bold and `pairs` (`seed 7`, `dtype float32`) two spaces apart, on as many lines
    as `width` needs, never breaking a pair."""
    text = Text(name, style="bold")
    line = len(name)
    for pair in pairs:
        if line + 2 + len(pair) > width:
            text.append("\n" + pair)
            line = len(pair)
        else:
            text.append("  " + pair)
            line += 2 + len(pair)
    return text


def natural_width(view: RenderableType) -> int:
    """The width `view` takes when nothing in it is wrapped or cut."""
    console = Console(width=1_000_000)
    return Measurement.get(console, console.options, view).maximum


def filled(
    title: str | None,
    columns: Sequence[Column],
    rows: Sequence[Sequence[RenderableType]],
    width: int,
    dropped: Sequence[str] = (),
) -> Table:
    """The table of `columns` (but those `dropped`) and `rows`, for a terminal `width` wide."""
    built = table(title, width)
    keep = [index for index, column in enumerate(columns) if column.name not in dropped]
    for index in keep:
        column = columns[index]
        built.add_column(
            column.name,
            justify=column.justify,
            overflow="fold" if column.fold else "ellipsis",
            no_wrap=not column.fold,
            min_width=max(len(column.name), column.min_width),
        )
    for row in rows:
        built.add_row(*(row[index] for index in keep))
    return built
