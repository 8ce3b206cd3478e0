from textkit.case import camel_case, kebab_case, pascal_case, snake_case, split_words, title_case


def test_split_words_handles_separators_and_digits():
    assert split_words("user_id2-value") == ["user", "id", "2", "value"]


def test_snake_case_from_any_style():
    assert snake_case("userName") == "user_name"
    assert snake_case("Parse response body") == "parse_response_body"
    assert snake_case("kebab-case-name") == "kebab_case_name"


def test_kebab_and_pascal_case():
    assert kebab_case("fetchUserData") == "fetch-user-data"
    assert pascal_case("fetch_user_data") == "FetchUserData"


def test_camel_case_from_snake():
    assert camel_case("fetch_user_data") == "fetchUserData"


def test_title_case_keeps_small_words_lowercase():
    assert title_case("the lord of the rings") == "The Lord of the Rings"


def test_title_case_keeps_acronyms():
    assert title_case("a history of NASA") == "A History of NASA"
