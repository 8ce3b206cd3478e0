from textkit.slug import slugify, unique_slug


def test_slugify_joins_lowercase_words():
    assert slugify("Hello, World!") == "hello-world"


def test_slugify_custom_separator_and_case():
    assert slugify("Release Notes 2024", sep="_", lowercase=False) == "Release_Notes_2024"


def test_slugify_drops_apostrophes():
    assert slugify("Don't panic") == "dont-panic"


def test_slugify_cuts_at_word_boundary():
    assert slugify("a long title about nothing", max_length=12) == "a-long-title"


def test_unique_slug_keeps_free_slug():
    assert unique_slug("My Post", taken={"other-post"}) == "my-post"
