import pytest

from textkit.template import Template, TemplateError, render


def test_render_nested_paths_and_filters():
    context = {"user": {"name": "ada lovelace", "roles": ["admin", "dev"]}}
    assert render("Hi {{ user.name | title }} ({{ user.roles.0 }})", context) == "Hi Ada Lovelace (admin)"


def test_filter_arguments():
    assert render('{{ tags | join:" / " }}', {"tags": ["a", "b"]}) == "a / b"


def test_strict_mode_names_missing_variable():
    with pytest.raises(TemplateError, match=r"user\.email"):
        render("{{ user.email }}", {"user": {}})


def test_default_filter_fills_missing_value():
    assert render('{{ nickname | default:"anon" | upper }}', {}) == "ANON"


def test_lenient_mode_renders_missing_as_empty():
    assert Template("[{{ missing }}]", strict=False).render({}) == "[]"


def test_unknown_filter_is_rejected_at_compile_time():
    with pytest.raises(TemplateError, match="shout"):
        Template("{{ name | shout }}")


def test_autoescape_and_safe():
    template = Template("<p>{{ body }}</p>{{ footer | safe }}", autoescape=True)
    assert template.render({"body": "a < b & c", "footer": "<hr>"}) == "<p>a &lt; b &amp; c</p><hr>"
