import pytest

from textkit.table import render_table


def test_numbers_right_aligned_text_left_aligned():
    table = render_table([["apple", 3], ["kiwi", 12]], headers=["fruit", "qty"])
    assert table.splitlines() == [
        "| fruit | qty |",
        "| :---- | --: |",
        "| apple |   3 |",
        "| kiwi  |  12 |",
    ]


def test_pipes_are_escaped_and_none_is_empty():
    table = render_table([["a|b", None]], headers=["x", "y"])
    assert table.splitlines()[2] == "| a\\|b |     |"


def test_explicit_center_alignment():
    table = render_table([["ab"]], headers=["col"], align=["center"])
    assert table.splitlines()[1:] == ["| :-: |", "| ab  |"]


def test_too_many_cells_names_the_row():
    with pytest.raises(ValueError, match="row 1"):
        render_table([["a"], ["b", "c"]], headers=["only"])
