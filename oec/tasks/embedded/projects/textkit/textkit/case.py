"""Identifier case conversion (snake, kebab, camel, Pascal) and English title casing.

All converters first split their input into words with :func:`split_words`, so any style can be
converted into any other: ``snake_case("parseHTTPResponse") == "parse_http_response"``.
"""

import re

# An acronym followed by a capitalised word ("HTTPServer" -> "HTTP", "Server"), a capitalised or
# lowercase word, a trailing acronym, or a run of digits.
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

# Words kept lowercase by title_case unless they open or close the title.
SMALL_WORDS = frozenset(
    {"a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to"}
)


def split_words(text: str) -> list[str]:
    """Split an identifier or phrase into its words, keeping acronyms together."""
    return _WORD.findall(text)


def snake_case(text: str) -> str:
    """``"Parse HTTP response"`` -> ``"parse_http_response"``."""
    return "_".join(word.lower() for word in split_words(text))


def kebab_case(text: str) -> str:
    """``"parseHttpResponse"`` -> ``"parse-http-response"``."""
    return "-".join(word.lower() for word in split_words(text))


def pascal_case(text: str) -> str:
    """``"parse_http_response"`` -> ``"ParseHttpResponse"``; acronyms are capitalised like words."""
    return "".join(word.capitalize() for word in split_words(text))


def camel_case(text: str) -> str:
    """``"parse_http_response"`` -> ``"parseHttpResponse"``; the first word is always lowercase."""
    words = split_words(text)
    if not words:
        return ""
    return words[0].lower() + "".join(word.capitalize() for word in words[1:])


def title_case(text: str) -> str:
    """Capitalise the words of an English title, keeping small words lowercase inside it.

    Whitespace is preserved and words written in capitals (acronyms such as ``"NASA"``) are kept
    as they are. The first and last words are always capitalised.
    """
    tokens = re.split(r"(\s+)", text.strip())
    word_positions = [index for index, token in enumerate(tokens) if token and not token.isspace()]
    if not word_positions:
        return ""
    first, last = word_positions[0], word_positions[-1]
    for index in word_positions:
        token = tokens[index]
        if token.isupper() and len(token) > 1:
            continue
        lowered = token.lower()
        if lowered in SMALL_WORDS and index not in (first, last):
            tokens[index] = lowered
        else:
            tokens[index] = lowered[:1].upper() + lowered[1:]
    return "".join(tokens)
