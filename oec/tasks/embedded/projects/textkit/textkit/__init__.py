"""textkit: small, dependency-free helpers for everyday text processing.

Slugs, word wrapping and justification, identifier case conversion, tokenising, a tiny
template engine, Markdown tables and string similarity, each in its own module.
"""

from textkit.case import camel_case, kebab_case, pascal_case, snake_case, split_words, title_case
from textkit.similarity import closest, jaccard, levenshtein, line_changes, similarity
from textkit.slug import ascii_fold, slugify, unique_slug
from textkit.table import render_table
from textkit.template import Template, TemplateError, render
from textkit.tokenize import ngrams, sentences, tokenize, word_frequencies
from textkit.wrap import justify, shorten, wrap, wrap_paragraphs

__all__ = [
    "Template",
    "TemplateError",
    "ascii_fold",
    "camel_case",
    "closest",
    "jaccard",
    "justify",
    "kebab_case",
    "levenshtein",
    "line_changes",
    "ngrams",
    "pascal_case",
    "render",
    "render_table",
    "sentences",
    "shorten",
    "similarity",
    "slugify",
    "snake_case",
    "split_words",
    "title_case",
    "tokenize",
    "unique_slug",
    "word_frequencies",
    "wrap",
    "wrap_paragraphs",
]
