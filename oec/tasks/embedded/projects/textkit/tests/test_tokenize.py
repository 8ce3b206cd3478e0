import pytest

from textkit.tokenize import ngrams, sentences, tokenize, word_frequencies


def test_tokenize_keeps_contractions_whole():
    assert tokenize("Don't stop, it's late!") == ["Don't", "stop", "it's", "late"]


def test_tokenize_keeps_punctuation_when_asked():
    assert tokenize("Hi, you!", keep_punct=True, lowercase=True) == ["hi", ",", "you", "!"]


def test_sentences_split_on_terminators():
    assert sentences("It rained. We stayed in! Did you? Yes.") == [
        "It rained.",
        "We stayed in!",
        "Did you?",
        "Yes.",
    ]


def test_sentences_ignore_lowercase_abbreviation():
    assert sentences("Bring fruit, e.g. Apples and pears. Then leave.") == [
        "Bring fruit, e.g. Apples and pears.",
        "Then leave.",
    ]


def test_bigrams():
    assert ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")]


def test_ngrams_rejects_zero():
    with pytest.raises(ValueError):
        ngrams(["a"], 0)


def test_word_frequencies_counts_and_stopwords():
    text = "The dog saw the dog; the dog ran, a cat ran."
    assert word_frequencies(text, stopwords=["THE", "a"], top=2) == [("dog", 3), ("ran", 2)]
