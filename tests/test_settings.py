from __future__ import annotations

import pytest

from aisched.queue.frameworks import NAMES
from aisched.runner import LOCAL_ONLY, run_settings
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


def test_metrics_listen_on_every_interface_by_default() -> None:
    assert load_settings({}).metrics.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::", "::"),
        ("0:0::1", "::1"),
        ("localhost", "localhost"),
        ("metrics.svc.", "metrics.svc."),
    ],
)
def test_the_metrics_address_is_a_setting(value: str, host: str) -> None:
    assert load_settings({"AISCHED_METRICS__HOST": value}).metrics.host == host


@pytest.mark.parametrize(
    "value", ["", " 0.0.0.0", "0.0.0.0:8080", "[::1]", "http://localhost", "300.1.1.1", "-a.b"]
)
def test_a_metrics_address_no_server_could_listen_on_is_an_error_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match=r"AISCHED_METRICS__HOST: .* is not an address to listen on"):
        load_settings({"AISCHED_METRICS__HOST": value})


def test_aisched_run_on_the_emulator_serves_metrics_on_this_machine_only() -> None:
    assert run_settings(emulator=True, leader_elect=None, environ={}).metrics.host == LOCAL_ONLY
    assert run_settings(emulator=False, leader_elect=None, environ={}).metrics.host == "0.0.0.0"
    chosen = run_settings(emulator=True, leader_elect=False, environ={"AISCHED_METRICS__HOST": "::"})
    assert chosen.metrics.host == "::", "the environment still decides"
    assert chosen.leader_election.enabled is False


def test_the_topology_levels_come_from_the_configured_node_labels() -> None:
    defaults = load_settings({}).topology.domains()
    assert (defaults.block, defaults.rack) == ("aisched.io/block", "aisched.io/rack")
    settings = load_settings(
        {
            "AISCHED_TOPOLOGY__BLOCK_LABEL": "network.topology.nvidia.com/spine",
            "AISCHED_TOPOLOGY__RACK_LABEL": "network.topology.nvidia.com/leaf",
        }
    )
    domains = settings.topology.domains()
    assert (domains.block, domains.rack) == (
        "network.topology.nvidia.com/spine",
        "network.topology.nvidia.com/leaf",
    )


@pytest.mark.parametrize("value", ["", "rack label", "-rack", "a/b/c", "example.com/" + "x" * 64])
def test_a_topology_label_that_is_no_label_key_is_an_error_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="AISCHED_TOPOLOGY__RACK_LABEL"):
        load_settings({"AISCHED_TOPOLOGY__RACK_LABEL": value})


def test_the_two_topology_levels_need_two_labels() -> None:
    with pytest.raises(SettingsError, match="one label per level"):
        load_settings({"AISCHED_TOPOLOGY__RACK_LABEL": "aisched.io/block"})


def test_every_job_frameworks_gangs_are_read_unless_the_settings_name_fewer() -> None:
    assert load_settings({}).scheduler.frameworks() == NAMES
    chosen = load_settings({"AISCHED_SCHEDULER__GANG_FRAMEWORKS": " jobset, job "}).scheduler.frameworks()
    assert chosen == {"jobset", "job"}
    assert load_settings({"AISCHED_SCHEDULER__GANG_FRAMEWORKS": ""}).scheduler.frameworks() == frozenset()


def test_an_unknown_job_framework_is_an_error_naming_the_variable_and_the_known_ones() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"AISCHED_SCHEDULER__GANG_FRAMEWORKS": "jobset,kueue"})
    message = str(raised.value)
    assert message.startswith("AISCHED_SCHEDULER__GANG_FRAMEWORKS")
    assert "unknown job framework(s) kueue; known: coscheduling, job, jobset," in message
