"""Word wrapping, full justification and shortening of plain text for fixed-width output."""

_PLACEHOLDER = "..."


def wrap(text: str, width: int) -> list[str]:
    """Greedily wrap the words of ``text`` into lines of at most ``width`` characters.

    Runs of whitespace (newlines included) count as one space. A word longer than ``width`` is
    split across lines so that no line ever exceeds the width.
    """
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    lines: list[str] = []
    current: list[str] = []
    length = 0
    for word in text.split():
        while len(word) > width:
            if current:
                lines.append(" ".join(current))
                current, length = [], 0
            lines.append(word[:width])
            word = word[width:]
        added = len(word) + (1 if current else 0)
        if current and length + added > width:
            lines.append(" ".join(current))
            current, length = [word], len(word)
        else:
            current.append(word)
            length += added
    if current:
        lines.append(" ".join(current))
    return lines


def wrap_paragraphs(text: str, width: int) -> str:
    """Wrap each blank-line separated paragraph on its own and keep one blank line between them."""
    paragraphs = [block for block in text.split("\n\n") if block.strip()]
    return "\n\n".join("\n".join(wrap(block, width)) for block in paragraphs)


def _justify_line(words: list[str], width: int) -> str:
    if len(words) == 1:
        return words[0]
    gaps = len(words) - 1
    spaces = width - sum(len(word) for word in words)
    base, extra = divmod(spaces, gaps)
    # Leftover spaces go to the leftmost gaps, as typesetters do.
    parts = [word + " " * (base + (1 if index < extra else 0)) for index, word in enumerate(words[:-1])]
    parts.append(words[-1])
    return "".join(parts)


def justify(text: str, width: int) -> list[str]:
    """Wrap ``text`` and pad every line but the last with spaces so it is exactly ``width`` wide."""
    lines = wrap(text, width)
    justified = [_justify_line(line.split(" "), width) for line in lines[:-1]]
    return justified + lines[-1:]


def shorten(text: str, width: int, placeholder: str = _PLACEHOLDER) -> str:
    """Collapse whitespace and, if the text is longer than ``width``, cut it at a word boundary.

    The result, placeholder included, is never longer than ``width``.
    """
    collapsed = " ".join(text.split())
    if len(collapsed) <= width:
        return collapsed
    if len(placeholder) > width:
        raise ValueError(f"placeholder {placeholder!r} does not fit in width {width}")
    kept: list[str] = []
    for word in collapsed.split(" "):
        candidate = " ".join([*kept, word])
        if len(candidate) + len(placeholder) > width:
            break
        kept.append(word)
    return " ".join(kept) + placeholder
