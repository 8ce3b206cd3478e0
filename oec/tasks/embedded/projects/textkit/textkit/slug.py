"""URL slugs: turn arbitrary titles into short lowercase ASCII identifiers safe for paths."""

import re
import unicodedata
from collections.abc import Collection

_WORD = re.compile(r"[A-Za-z0-9]+")


def ascii_fold(text: str) -> str:
    """Drop accents and any character without an ASCII form: ``"Crème brûlée"`` -> ``"Creme brulee"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return decomposed.encode("ascii", "ignore").decode("ascii")


def slugify(text: str, sep: str = "-", max_length: int | None = None, lowercase: bool = True) -> str:
    """Join the ASCII words of ``text`` with ``sep``.

    Apostrophes are removed rather than treated as separators, so ``"Don't panic"`` becomes
    ``"dont-panic"``. With ``max_length`` the slug is cut at a word boundary; only a first word
    that alone exceeds the limit is cut inside the word.
    """
    folded = ascii_fold(text).replace("'", "")
    if lowercase:
        folded = folded.lower()
    words = _WORD.findall(folded)
    if max_length is None:
        return sep.join(words)
    slug = ""
    for word in words:
        candidate = f"{slug}{sep}{word}" if slug else word
        if len(candidate) > max_length:
            break
        slug = candidate
    if not slug and words:
        slug = words[0][:max_length]
    return slug


def unique_slug(text: str, taken: Collection[str], sep: str = "-", max_length: int | None = None) -> str:
    """Slugify ``text`` and, if the slug is already taken, append the smallest free counter from 2."""
    base = slugify(text, sep=sep, max_length=max_length)
    if base not in taken:
        return base
    counter = 2
    while f"{base}{sep}{counter}" in taken:
        counter += 1
    return f"{base}{sep}{counter}"
