"""The worker's settings: partitions, group, session and health address, with defaults an
operator can rely on and a message naming the variable when one cannot be used."""

from __future__ import annotations

import pytest

from alphabet.settings import Settings, SettingsError
from consumers.kafka.app import KafkaOptions


def test_the_worker_settings_have_safe_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.kafka_partitions, settings.kafka_group, settings.kafka_session_seconds,
            settings.worker_health) == (8, "alphabet-events", 6, ("127.0.0.1", 6066))


def test_the_worker_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env({
        "ALPHABET_KAFKA_PARTITIONS": "3", "ALPHABET_KAFKA_GROUP": "mail",
        "ALPHABET_KAFKA_SESSION_SECONDS": "10", "ALPHABET_WORKER_HEALTH": "[::1]:7070"})
    assert (settings.kafka_partitions, settings.kafka_group, settings.kafka_session_seconds,
            settings.worker_health) == (3, "mail", 10, ("::1", 7070))


@pytest.mark.parametrize(("name", "value"), [
    ("KAFKA_PARTITIONS", "0"), ("KAFKA_PARTITIONS", "many"), ("KAFKA_SESSION_SECONDS", "-1"),
    ("WORKER_HEALTH", "6066"), ("WORKER_HEALTH", "localhost:http"),
    ("WORKER_HEALTH", "localhost:70000"),
])
def test_a_worker_setting_that_cannot_be_used_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"ALPHABET_{name}"):
        Settings.from_env({f"ALPHABET_{name}": value})


def test_every_broker_of_the_url_is_bootstrapped() -> None:
    assert KafkaOptions("kafka://k1:9092;kafka://k2:9093").bootstrap == ["k1:9092", "k2:9093"]
    assert KafkaOptions("kafka://k1:9092,k2:9092").bootstrap == ["k1:9092", "k2:9092"]
