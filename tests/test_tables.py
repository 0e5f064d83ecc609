"""Text tables are read a block of lines at a time, two ways: by NumPy at once where every cell
is a finite number, cell by cell otherwise (to name the cell that is not). The two readings
agree on every table both read, and blocks of any size read as the whole."""

from __future__ import annotations

import io

import numpy as np
import pytest

from mlpcli.data import lines, tables
from mlpcli.errors import MlpcliError

EMPTY = "an empty cell is a missing value (pandas writes NaN as one); features must be finite"

TEXTS = [
    "1,2,3\n4,5,6\n",
    "a,b,c\n1,2,3\n4,5,6\n",
    ",a,b\n0,1.5,2\n1,3,4\n",  # pandas' index under an empty heading
    "Unnamed: 0,a\n0,1\n1,2\n",
    "0,1,2\n7,8,9\n",  # pandas' default column names
    "1,2\r3,4\r",  # CR-only line endings
    "1,2\r\n3,4\r\n",
    "# written by hand\n1,2\n\n# more\n3,4\n",
    "1 2 3\n4 5 6\n",  # np.savetxt's default
    "1\t2\n3\t4\n",
    "1;2\n3;4\n",
    '"a","b"\n"1","2"\n',
    '"x,y",z\n1,2,3\n',  # a quoted name holding the delimiter: 2 names over 3 values
    "3,4 # a note\n5,6\n",  # a comment inside a line is no comment
    "9\x0c5\n",  # a form feed ends a line, as str.splitlines says
    "a,b\n",  # a header and no rows
    ",a\n0.5,1\n1,2\n",  # a first column that is not whole numbers is a feature
    "1,2,3\n4,5\n",  # ragged
    'a,b\n"4"9,1\n"7" ,2\n',  # a quote, then more of the cell: 49 and 7, as pandas reads them
    'a,b\n"4"9,1\n1_0,2\n',  # 1_0 is no number either way (Python's float() alone reads it)
]


def _read(text: str, rows: int = 1000, wanted: list[str | int] | None = None) -> tuple[object, ...]:
    try:
        numbered = list(lines.data_lines(lines.numbered("x.csv", io.BytesIO(text.encode()))))
        layout = lines.text_layout("x.csv", numbered, len(numbered))
        blocks = list(lines.text_blocks(layout, iter(numbered), rows, wanted))
        return (layout.names, np.concatenate(blocks).tolist(), layout.notes)
    except MlpcliError as error:
        return ("error", str(error))


@pytest.mark.parametrize("text", TEXTS)
def test_numpy_and_cell_by_cell_read_a_table_alike(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _read(text)
    assert fast == _read(text, rows=1)  # a block a line
    monkeypatch.setattr(lines, "numeric_block", lambda layout, block: None)
    assert fast == _read(text)


def test_numpy_reads_a_table_of_numbers_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lines, "cell_table", None)  # no list of cells is made
    assert _read(",a,b\n0,1.5,2\n1,3,4\n", wanted=["b"])[1] == [[2.0], [4.0]]


def test_lines_break_where_splitlines_breaks_them_across_pieces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "1,2\r\n3,4\r5,6\x0c7,8\u20289,10\n11,12"
    monkeypatch.setattr(lines, "PIECE", 3)  # a '\r\n' and a UTF-8 character cut in two
    got = list(lines.numbered("x.csv", io.BytesIO(text.encode())))
    assert got == list(enumerate(text.splitlines(), 1))


@pytest.mark.parametrize(
    ("first", "below", "expected"),
    [
        (["400", "500", "600"], [["0.25", "1.5", "-2.0"], ["1.0", "0.5", "3.5"]], True),
        (["", "400", "500"], [["0", "0.25", "1.5"], ["1", "1.0", "0.5"]], True),  # pandas index
        (["0", "1", "2"], [["3", "7", "1"]], True),  # pandas' default names
        (["3", "1", "2"], [["4", "5", "1"], ["9", "2", "8"]], False),  # whole over whole
        (["1", "2", "3"], [["4", "5", "1"], ["9", "2", "8"]], None),  # rising like names
        (["1", "2"], [["1", "2"], ["1", "2"]], False),  # rising like every row
        (["0.5", "1.0", "2.0"], [["0.25", "1.5", "-2.0"], ["1.0", "0.5", "3.5"]], None),
        (["0.5", "", "0.3"], [["1", "2", "3"]], False),  # a missing value, not a name
        (["0.5", "0.1"], [], False),  # one line
    ],
)
def test_a_first_line_of_numbers_is_a_header_where_its_types_differ(
    first: list[str], below: list[list[str]], expected: bool | None
) -> None:
    assert tables.is_header(first, below) is expected


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("a,b\n1,\n", f"line 2, column 2: {EMPTY}"),  # one row: a missing value
        ("a,b\n1,\n2,3\n", f"line 2, column 2: {EMPTY}"),
        ("a,b\n1,x\n", "column 'b' is not numbers (line 2, column 2: 'x'); pick the feature"),
    ],
)
def test_an_empty_cell_is_a_missing_value_not_a_column_of_labels(text: str, said: str) -> None:
    """A column whose cells are all empty was taken for one of text (pick the columns with
    input_columns): its cells are missing numbers, named where they are."""
    error = _read(text)
    assert error[0] == "error"
    assert said in str(error[1])


def test_a_quote_then_more_of_the_cell_reads_as_pandas_reads_it() -> None:
    """`"4"9` is 49 to pyarrow, NumPy and pandas, and so cell by cell (where a cell that is
    no number to them sends a block)."""
    assert _read('a,b\n"4"9,1\n"7" ,2\n')[1] == [[49.0, 1.0], [7.0, 2.0]]


@pytest.mark.parametrize("cell", ["1_0", "1_000.5", "\u0663", "\uff11"])
def test_a_cell_only_python_reads_as_a_number_is_none(cell: str) -> None:
    """Python's float() reads `1_0` as 10, and Arabic-Indic and full-width digits as digits;
    NumPy, pandas and pyarrow read none of them: an error that names the cell, not a number
    that no other reader of the file would see."""
    error = _read(f"a,b\n2,1\n{cell},2\n")
    assert error[0] == "error"
    assert f"line 3, column 1: {cell!r} is not a number" in str(error[1])
