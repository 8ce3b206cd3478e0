from textkit.similarity import closest, jaccard, levenshtein, line_changes, similarity


def test_levenshtein_is_symmetric():
    for a, b, distance in [("kitten", "sitting", 3), ("", "abc", 3), ("flaw", "lawn", 2)]:
        assert levenshtein(a, b) == distance
        assert levenshtein(b, a) == distance


def test_similarity_bounds():
    assert similarity("abc", "abc") == 1.0
    assert similarity("abc", "xyz") == 0.0


def test_jaccard_is_case_insensitive():
    assert jaccard("Night", "night") == 1.0
    assert jaccard("ab", "cd") == 0.0


def test_closest_orders_by_similarity():
    assert closest("colour", ["color", "cooler", "column", "red"], cutoff=0.4) == [
        "color",
        "cooler",
        "column",
    ]


def test_line_changes_marks_added_and_removed():
    kinds = [(change.kind, change.text) for change in line_changes("a\nb\n", "a\nc\n")]
    assert kinds == [(" ", "a"), ("-", "b"), ("+", "c")]
