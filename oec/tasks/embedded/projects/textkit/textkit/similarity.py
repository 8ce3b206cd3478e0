"""String similarity (edit distance, n-gram overlap), fuzzy lookup and line-level change lists."""

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


def levenshtein(a: str, b: str) -> int:
    """The minimum number of single-character insertions, deletions and substitutions from a to b."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            cost = 0 if char_a == char_b else 1
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost))
        previous = current
    return previous[-1]


def similarity(a: str, b: str) -> float:
    """Edit-distance similarity in [0, 1]: 1.0 for equal strings (two empty strings included)."""
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein(a, b) / longest


def _grams(text: str, n: int) -> set[str]:
    if len(text) < n:
        return {text} if text else set()
    return {text[start : start + n] for start in range(len(text) - n + 1)}


def jaccard(a: str, b: str, n: int = 2) -> float:
    """Jaccard overlap of the character n-gram sets of ``a`` and ``b`` (case-insensitive)."""
    grams_a, grams_b = _grams(a.lower(), n), _grams(b.lower(), n)
    union = grams_a | grams_b
    if not union:
        return 1.0
    return len(grams_a & grams_b) / len(union)


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.6, limit: int = 3) -> list[str]:
    """Candidates whose :func:`similarity` to ``word`` is at least ``cutoff``, best first.

    Equally similar candidates keep their input order.
    """
    scored = [
        (similarity(word, candidate), position, candidate) for position, candidate in enumerate(candidates)
    ]
    kept = [item for item in scored if item[0] >= cutoff]
    kept.sort(key=lambda item: (-item[0], item[1]))
    return [candidate for _, _, candidate in kept[:limit]]


@dataclass(frozen=True)
class Change:
    """One line of a line diff: ``kind`` is ``"+"``, ``"-"`` or ``" "``; line numbers are 1-based."""

    kind: str
    old_line: int | None
    new_line: int | None
    text: str


def line_changes(old: str, new: str) -> list[Change]:
    """Every line of ``old`` and ``new`` as kept, removed or added, with its line numbers."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    changes: list[Change] = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, old_start, old_end, new_start, new_end in matcher.get_opcodes():
        if tag == "equal":
            for offset in range(old_end - old_start):
                line = old_lines[old_start + offset]
                changes.append(Change(" ", old_start + offset + 1, new_start + offset + 1, line))
            continue
        for index in range(old_start, old_end):
            changes.append(Change("-", index + 1, None, old_lines[index]))
        for index in range(new_start, new_end):
            changes.append(Change("+", None, index + 1, new_lines[index]))
    return changes
