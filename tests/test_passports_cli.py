"""`connector passports list|show|delete` beside import and export, and the import's progress bar on a real
terminal (a pseudo-terminal): drawn only there, never run into by log lines, never with --json."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import passport_records as records
from tests.import_paths import run_cli


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    """A node's data directory holding eight passports (one of them Catena-X), imported by the CLI."""
    source = tmp_path / "in.jsonl"
    lines = [records.compact(records.node(i)) for i in range(7)] + [records.compact(records.catenax(1))]
    source.write_bytes(b"\n".join(lines) + b"\n")
    data = tmp_path / "data"
    assert run_cli(data, "passports", "import", str(source)).code == 0
    return data


def test_list_pages_through_with_the_apis_filters(stored: Path) -> None:
    table = run_cli(stored, "passports", "list")
    assert table.code == 0, table.err
    header, *rows = table.out.splitlines()
    assert header.split("\t") == ["id", "version", "model", "battery", "updated", "deleted"]
    assert sorted(row.split("\t")[0] for row in rows) == sorted(
        [records.node_id(i) for i in range(7)] + [records.catenax_id(1)]
    )
    seen: list[str] = []
    cursor: list[str] = []
    while True:
        page = run_cli(stored, "passports", "list", "--limit", "3", "--json", *cursor)
        answer = page.json()
        seen += [item["id"] for item in answer["items"]]
        assert len(answer["items"]) <= 3
        if answer["next"] is None:
            break
        cursor = ["--cursor", answer["next"]]
    assert len(seen) == 8 == len(set(seen))
    model = records.node(0)["identity"]["model_id"]
    only = run_cli(stored, "passports", "list", "--model", model, "--json").json()["items"]
    assert only and all(item["modelId"] == model for item in only)
    more = run_cli(stored, "passports", "list", "--limit", "2")
    assert "more: add --cursor " in more.err
    assert run_cli(stored, "passports", "list", "--cursor", "%%%").code == 1
    with pytest.raises(SystemExit):  # argparse: --limit 0 is a usage error
        run_cli(stored, "passports", "list", "--limit", "0")


def test_show_one_passport_its_history_and_other_formats(stored: Path) -> None:
    pid = records.catenax_id(1)
    shown = run_cli(stored, "passports", "show", pid)
    assert shown.code == 0, shown.err
    envelope = shown.json()
    assert (envelope["id"], envelope["version"], envelope["sourceFormat"]) == (pid, 1, "catenax-6.1")
    assert envelope["passport"]["identity"]["passport_id"] == pid
    catenax = run_cli(stored, "passports", "show", pid, "--format", "catenax").json()
    assert catenax["passport"] == records.catenax(1)
    history = run_cli(stored, "passports", "show", pid, "--history").json()
    assert [v["version"] for v in history["versions"]] == [1]
    missing = run_cli(stored, "passports", "show", "urn:uuid:nope")
    assert missing.code == 1 and "no passport 'urn:uuid:nope'" in missing.err


def test_delete_asks_first_and_keeps_the_history(stored: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid = records.node_id(2)
    unasked = run_cli(stored, "passports", "delete", pid)
    assert unasked.code == 2 and "--yes" in unasked.err
    assert run_cli(stored, "passports", "show", pid).code == 0, "nothing was deleted"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    declined = run_cli_keeping_stdin(stored, "passports", "delete", pid)
    assert declined.code == 1 and "nothing deleted" in declined.err
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    confirmed = run_cli_keeping_stdin(stored, "passports", "delete", pid)
    assert confirmed.code == 0 and f"deleted {pid}" in confirmed.out, confirmed.err
    assert run_cli(stored, "passports", "show", pid).code == 1
    listed = run_cli(stored, "passports", "list", "--include-deleted", "--json").json()["items"]
    assert [item["deleted"] for item in listed if item["id"] == pid] == [True]
    history = run_cli(stored, "passports", "show", pid, "--history").json()["versions"]
    assert [(v["version"], v["deleted"]) for v in history] == [(1, False), (2, True)]
    again = run_cli(stored, "passports", "delete", pid, records.node_id(3), "--yes")
    assert again.code == 1 and f"no passport {pid!r}" in again.err and f"deleted {records.node_id(3)}" in again.out


def run_cli_keeping_stdin(data: Path, *args: str) -> object:
    """Run the CLI with the test's own stdin (run_cli gives it an empty, non-terminal one)."""
    import contextlib

    from connector.cli import main
    from tests.import_paths import CliRun, _environment

    out, err = io.StringIO(), io.StringIO()
    with _environment(data), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return CliRun(code, out.getvalue(), err.getvalue())


# The progress bar, on a pseudo-terminal.


def _on_terminal(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run `connector ARGS` with stderr on a pseudo-terminal; return the status, stdout and what the terminal got."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONNECTOR_DATA_DIR": str(tmp_path / "data"),
        "CONNECTOR_LOG_LEVEL": "INFO",
        "CONNECTOR_LOG_FORMAT": "json",
    }
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert process.stdout is not None
    stdout = process.stdout.read().decode()
    process.stdout.close()
    return process.wait(timeout=120), stdout, seen.decode()


def _screen(written: str) -> list[str]:
    """Return the lines a terminal shows after `written` (carriage returns overwrite, line feeds move on)."""
    lines: list[str] = []
    line: list[str] = []
    column = 0
    for char in written:
        if char == "\r":
            column = 0
        elif char == "\n":
            lines.append("".join(line).rstrip())
            line, column = [], 0
        else:
            if column < len(line):
                line[column] = char
            else:
                line.append(char)
            column += 1
    if line:
        lines.append("".join(line).rstrip())
    return [text for text in lines if text]


BAR = re.compile(r"^\[[#.]{30}\] [\d,]+/[\d,]+ +[\d.]+% [\d,]+/s, [\d,]+ s left, [\d,]+ refused$")


def test_the_progress_bar_and_log_lines_never_share_a_line(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(records.compact(records.node(i)) for i in range(400)) + b"\n{broken\n")
    code, stdout, terminal = _on_terminal(tmp_path, "passports", "import", str(source), "--batch", "50")
    assert code == 1, terminal
    shown = _screen(terminal)
    bars = [line for line in shown if BAR.match(line)]
    logs = [json.loads(line) for line in shown if line.startswith("{")]
    assert bars, shown
    assert "passports imported" in [entry["msg"] for entry in logs], shown
    for line in shown:
        assert BAR.match(line) or (line.startswith("{") and line.endswith("}")), (
            f"a bar and a log on one line: {line!r}"
        )
    assert "401 read: 400 new, 0 changed, 0 unchanged, 1 refused" in stdout


def test_no_progress_bar_with_json_output(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(records.compact(records.node(i)) for i in range(120)) + b"\n")
    code, stdout, terminal = _on_terminal(tmp_path, "passports", "import", str(source), "--batch", "10", "--json")
    assert code == 0
    assert json.loads(stdout)["new"] == 120
    shown = _screen(terminal)
    assert not [line for line in shown if not line.startswith("{")], shown  # log lines only
