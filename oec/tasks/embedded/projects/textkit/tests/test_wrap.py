import pytest

from textkit.wrap import justify, shorten, wrap, wrap_paragraphs

TEXT = "the quick brown fox jumps over the lazy dog"


def test_wrap_never_exceeds_width():
    lines = wrap(TEXT, 10)
    assert lines == ["the quick", "brown fox", "jumps over", "the lazy", "dog"]
    assert all(len(line) <= 10 for line in lines)


def test_wrap_splits_long_words():
    assert wrap("abcdefgh ij", 3) == ["abc", "def", "gh", "ij"]


def test_wrap_rejects_zero_width():
    with pytest.raises(ValueError, match="width"):
        wrap(TEXT, 0)


def test_wrap_paragraphs_keeps_blank_line():
    assert wrap_paragraphs("one two three\n\nfour five", 8) == "one two\nthree\n\nfour\nfive"


def test_justify_pads_all_but_last_line():
    lines = justify(TEXT, 15)
    assert all(len(line) == 15 for line in lines[:-1])
    assert lines[-1] == "the lazy dog"


def test_shorten_leaves_short_text_alone():
    assert shorten("  hello   world ", 20) == "hello world"
