"""Settings: defaults, environment, TOML file, precedence, and one clear line for every invalid setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connector.settings import SettingsError, did_web_from_url, load_settings


def test_defaults_are_the_documented_ones() -> None:
    settings = load_settings(environ={})
    assert (settings.protocol_host, settings.protocol_port) == ("127.0.0.1", 8282)
    assert (settings.management_host, settings.management_port) == ("127.0.0.1", 8181)
    assert settings.api_key is None
    assert settings.effective_database_url == "sqlite+aiosqlite:///data/connector.db"
    assert settings.auto_migrate is True
    assert settings.effective_public_url == "http://localhost:8282"
    assert settings.effective_participant_id == "did:web:localhost%3A8282"


def test_environment_is_read() -> None:
    settings = load_settings(
        environ={
            "CONNECTOR_PARTICIPANT_ID": "BPNL000000000001",
            "CONNECTOR_PUBLIC_URL": "https://node.example.com/battery/",
            "CONNECTOR_PROTOCOL_PORT": "9000",
            "CONNECTOR_DATABASE_URL": "postgresql://u@db/x",
        }
    )
    assert settings.effective_participant_id == "BPNL000000000001"
    assert settings.effective_public_url == "https://node.example.com/battery"
    assert settings.protocol_port == 9000
    assert settings.effective_database_url == "postgresql+asyncpg://u@db/x"
    assert settings.auto_migrate is False
    assert settings.dsp_base_url == "https://node.example.com/battery/api/dsp/2025-1"


def test_toml_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('participant_id = "from-file"\nmanagement_port = 9191\nlog_format = "text"\n')
    settings = load_settings(config, environ={"CONNECTOR_PARTICIPANT_ID": "from-env"})
    assert settings.effective_participant_id == "from-env"
    assert settings.management_port == 9191
    assert settings.log_format == "text"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CONNECTOR_PROTOCOL_PORT": "70000"}, "CONNECTOR_PROTOCOL_PORT"),
        ({"CONNECTOR_PROTOCOL_PORT": "eighty"}, "CONNECTOR_PROTOCOL_PORT"),
        ({"CONNECTOR_PUBLIC_URL": "not a url"}, "CONNECTOR_PUBLIC_URL"),
        ({"CONNECTOR_MANAGEMENT_HOST": "0.0.0.0"}, "CONNECTOR_MANAGEMENT_HOST"),
        ({"CONNECTOR_API_KEY": "short"}, "CONNECTOR_API_KEY"),
        ({"CONNECTOR_DATABASE_URL": "mysql://x/y"}, "CONNECTOR_DATABASE_URL"),
        ({"CONNECTOR_LOG_LEVEL": "LOUD"}, "CONNECTOR_LOG_LEVEL"),
        ({"CONNECTOR_PROTOCL_PORT": "1"}, "CONNECTOR_PROTOCL_PORT"),
        ({"CONNECTOR_BDRS_URL": "ftp://bdrs.example/api/directory"}, "CONNECTOR_BDRS_URL"),
        ({"CONNECTOR_BDRS_CACHE_SECONDS": "-1"}, "CONNECTOR_BDRS_CACHE_SECONDS"),
    ],
)
def test_invalid_setting_is_named_in_one_line(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    message = str(caught.value)
    assert message.startswith(named + ":"), message
    assert "\n" not in message


def test_api_key_is_never_shown_in_errors() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"CONNECTOR_API_KEY": "tiny"})
    assert "tiny" not in str(caught.value)


def test_management_may_bind_anywhere_with_a_key() -> None:
    settings = load_settings(environ={"CONNECTOR_MANAGEMENT_HOST": "0.0.0.0", "CONNECTOR_API_KEY": "k" * 20})
    assert settings.management_host == "0.0.0.0"


def test_bad_toml_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("participant_id = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config, environ={})
    config.write_text('colour = "blue"\n')
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings(config, environ={})


@pytest.mark.parametrize(
    ("url", "did"),
    [
        ("http://localhost:8282", "did:web:localhost%3A8282"),
        ("https://node.example.com", "did:web:node.example.com"),
        ("https://node.example.com/a/b/", "did:web:node.example.com:a:b"),
    ],
)
def test_did_web_from_url(url: str, did: str) -> None:
    assert did_web_from_url(url) == did


def test_cli_stops_with_one_clear_line_on_invalid_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connector.cli", "serve"],
        env={"CONNECTOR_MANAGEMENT_PORT": "-1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CONNECTOR_MANAGEMENT_PORT" in lines[0]
