"""Tokenising English text into words and sentences, n-grams and word frequency tables."""

import re
from collections import Counter
from collections.abc import Iterable, Sequence

# A word may contain inner apostrophes ("don't", "o'clock"); any other non-space symbol is its own token.
_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'“(]?[A-Z0-9])")

# Abbreviations whose trailing period does not end a sentence (compared in lowercase).
ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "etc.", "e.g.", "i.e.", "no."})


def tokenize(text: str, keep_punct: bool = False, lowercase: bool = False) -> list[str]:
    """Split ``text`` into word tokens, optionally keeping punctuation marks as separate tokens."""
    tokens = _TOKEN.findall(text)
    if not keep_punct:
        tokens = [token for token in tokens if token[0].isalnum() or token[0] == "_"]
    if lowercase:
        tokens = [token.lower() for token in tokens]
    return tokens


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences at ``.``, ``!`` or ``?`` followed by a capitalised word.

    A period that ends a known abbreviation ("Dr.", "e.g.") does not end the sentence.
    """
    pieces = _SENTENCE_END.split(text.strip())
    result: list[str] = []
    for piece in pieces:
        if result and result[-1].split()[-1].lower() in ABBREVIATIONS:
            result[-1] = f"{result[-1]} {piece}"
        else:
            result.append(piece)
    return [sentence for sentence in result if sentence]


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """All runs of ``n`` consecutive tokens, in order."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return [tuple(tokens[start : start + n]) for start in range(len(tokens) - n + 1)]


def word_frequencies(
    text: str, stopwords: Iterable[str] = (), top: int | None = None
) -> list[tuple[str, int]]:
    """Count lowercase words, most frequent first; ties are broken alphabetically.

    Words in ``stopwords`` (compared case-insensitively) are not counted.
    """
    ignored = {word.lower() for word in stopwords}
    counts = Counter(word for word in tokenize(text, lowercase=True) if word not in ignored)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked if top is None else ranked[:top]
