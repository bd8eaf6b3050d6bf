from __future__ import annotations

import pytest

from aisched.settings import Settings, SettingsError, load_settings


def test_defaults_need_no_environment() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.metrics.port == 8080
    assert settings.logging.format == "auto"


def test_environment_overrides_by_section_and_field() -> None:
    settings = load_settings(
        {"AISCHED_LOGGING__LEVEL": "DEBUG", "AISCHED_METRICS__PORT": "9090", "HOME": "/root"}
    )
    assert settings.logging.level == "DEBUG"
    assert settings.metrics.port == 9090


def test_explicit_overrides_win_over_the_environment() -> None:
    settings = load_settings({"AISCHED_METRICS__PORT": "9090"}, metrics={"port": 7070})
    assert settings.metrics.port == 7070


@pytest.mark.parametrize("name", ["AISCHED_METRICS__PROT", "AISCHED_METRIC__PORT", "AISCHED_PORT"])
def test_a_misspelt_variable_is_an_error_naming_it(name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: "1"})


def test_a_bad_value_is_an_error_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="AISCHED_METRICS__PORT"):
        load_settings({"AISCHED_METRICS__PORT": "eighty"})
    with pytest.raises(SettingsError, match="AISCHED_LOGGING__FORMAT"):
        load_settings({"AISCHED_LOGGING__FORMAT": "xml"})


def test_how_often_a_waiting_jobs_place_is_refreshed_is_a_positive_setting() -> None:
    assert load_settings({}).queueing.status_every_seconds == 10.0
    settings = load_settings({"AISCHED_QUEUEING__STATUS_EVERY_SECONDS": "2.5"})
    assert settings.queueing.status_every_seconds == 2.5
    with pytest.raises(SettingsError, match="AISCHED_QUEUEING__STATUS_EVERY_SECONDS"):
        load_settings({"AISCHED_QUEUEING__STATUS_EVERY_SECONDS": "0"})
