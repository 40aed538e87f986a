"""ALPHABET_PUBLIC_URL: where clients reach the server, which calendar feed URLs begin with;
unset, each request's own address is used."""

from __future__ import annotations

import pytest

from alphabet.settings import Settings, SettingsError


@pytest.mark.parametrize(("value", "kept"), [
    ("", None),
    ("https://events.example.com", "https://events.example.com"),
    ("https://events.example.com/", "https://events.example.com"),
    ("http://127.0.0.1:8000/alphabet/", "http://127.0.0.1:8000/alphabet"),
])
def test_the_public_url_is_kept_without_a_trailing_slash(value: str, kept: str | None) -> None:
    assert Settings.from_env({"ALPHABET_PUBLIC_URL": value}).public_url == kept


@pytest.mark.parametrize("value", ["events.example.com", "ftp://events.example.com",
                                   "https://", "https://events.example.com/?a=1",
                                   "https://events.example.com/#top"])
def test_a_public_url_that_is_no_http_address_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="ALPHABET_PUBLIC_URL"):
        Settings.from_env({"ALPHABET_PUBLIC_URL": value})
