"""ALPHABET_MAIL_FROM and ALPHABET_MAIL_DOMAIN: the From address must be one, and every
Message-ID is at a domain name, the From's own unless another is set."""

from __future__ import annotations

import pytest

from alphabet.settings import Settings, SettingsError


@pytest.mark.parametrize(("env", "domain"), [
    ({}, "localhost"),
    ({"ALPHABET_MAIL_FROM": "Événements <events@Mail.Example.COM>"}, "mail.example.com"),
    ({"ALPHABET_MAIL_FROM": "events@mail.example.com",
      "ALPHABET_MAIL_DOMAIN": "IDS.example.org"}, "ids.example.org"),
])
def test_message_ids_are_at_the_mail_domain_or_else_the_from_addresss(
    env: dict[str, str], domain: str
) -> None:
    assert Settings.from_env(env).message_domain == domain


@pytest.mark.parametrize("value", ["events", "Alphabet Events", "events@", "events@-bad.example",
                                   "events@bad_domain.example"])
def test_a_from_that_is_no_address_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="ALPHABET_MAIL_FROM"):
        Settings.from_env({"ALPHABET_MAIL_FROM": value})


@pytest.mark.parametrize("value", ["alphabet_events", "a..b", "-a.example", "a" * 64 + ".example",
                                   "mail.example.com.", "[127.0.0.1]"])
def test_a_mail_domain_that_is_no_domain_name_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="ALPHABET_MAIL_DOMAIN"):
        Settings.from_env({"ALPHABET_MAIL_DOMAIN": value})
