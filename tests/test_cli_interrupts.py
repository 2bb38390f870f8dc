"""Commands that are interrupted end as a person expects: a short message, the usual exit status, no traceback.

Ctrl-C (SIGINT) during `connector passports import` says how far the import got and that running it again
resumes there, and exits 130; `connector passports export | head -1` ends quietly when the reader has gone.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import sqlite3
import sys
from contextlib import suppress
from pathlib import Path

import orjson
import pytest

from connector.domain.passport.synthetic import generate

RECORDS = 20_000
FILES = 20


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONNECTOR_DATA_DIR": str(tmp_path / "data"),
        "CONNECTOR_LOG_LEVEL": "WARNING",
    }


def _as_from_a_terminal() -> None:
    # A command started from a terminal gets Ctrl-C; one started where SIGINT is ignored (a test run started
    # in the background by a non-interactive shell, under nohup) inherits the ignoring and rightly goes on.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def _connector(tmp_path: Path, *args: str, **kwargs: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector.cli",
        *args,
        cwd=tmp_path,
        env=_env(tmp_path),
        preexec_fn=_as_from_a_terminal,
        **kwargs,
    )


def _checkpoint(database: Path) -> int:
    if not database.exists():
        return 0
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as connection:
        try:
            row = connection.execute("SELECT max(position) FROM passport_imports").fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return 0
    return int(row[0] or 0)


def _stored(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM passports").fetchone()[0])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of generated passports, large enough that an import is still running when interrupted."""
    source = tmp_path / "passports"
    source.mkdir()
    per_file = RECORDS // FILES
    for f in range(FILES):
        lines = (orjson.dumps(generate(i)) for i in range(f * per_file, (f + 1) * per_file))
        (source / f"part{f:02d}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return source


@pytest.mark.parametrize("to_group", [False, True], ids=["to-the-command", "to-its-process-group"])
async def test_ctrl_c_during_an_import_says_where_it_stopped_and_resumes_there(
    tmp_path: Path, folder: Path, to_group: bool
) -> None:
    """The source (52 MB) is large enough for worker processes; a terminal's Ctrl-C reaches them too."""
    database = tmp_path / "data" / "connector.db"
    process = await _connector(
        tmp_path,
        "passports",
        "import",
        str(folder),
        "--batch",
        "100",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=to_group,
    )
    async with asyncio.timeout(120):
        # Interrupt once the import has committed a few batches (and is not finished).
        while _checkpoint(database) < 1000:
            assert process.returncode is None, "the import ended before it could be interrupted"
            await asyncio.sleep(0.05)
        if to_group:  # as a terminal sends it: to the command and its worker processes
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        _, stderr = await process.communicate()
    said = stderr.decode()
    assert process.returncode == 130, said
    assert "Traceback" not in said and "KeyboardInterrupt" not in said and "CancelledError" not in said, said
    lines = [line for line in said.splitlines() if line.strip()]
    assert len(lines) <= 2, said
    stopped = re.search(r"interrupted after record ([\d,]+)", said)
    assert stopped is not None, said
    position = int(stopped.group(1).replace(",", ""))
    assert 1000 <= position < RECORDS
    assert position == _checkpoint(database), "the message names the checkpoint the next run resumes from"
    assert "run the same command again" in said

    again = await _connector(
        tmp_path, "passports", "import", str(folder), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(again.communicate(), 180)
    assert again.returncode == 0, err.decode()
    assert f"after record {position:,}" in err.decode()
    assert _stored(database) == RECORDS


def _workers(pid: int) -> list[int]:
    """Return the import's worker processes: the children of `pid` that run multiprocessing's spawn_main."""
    found = []
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for number in child.read_text().split():
            try:
                command = Path(f"/proc/{number}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in command:
                found.append(int(number))
    return found


# The numbers of write(2) and sendmsg(2) (what a worker sends a chunk back with), to see in /proc/<pid>/syscall
# that a worker is blocked sending a chunk back.
_WRITE = {"x86_64": ("1", "46"), "aarch64": ("64", "211")}.get(os.uname().machine)


def _sending(pid: int) -> list[int]:
    """Return the import's workers that are in the middle of writing (a chunk back: a chunk's results are
    megabytes, far more than a pipe holds, so a worker whose reader is stopped stays in write)."""
    found = []
    for worker in _workers(pid):
        try:
            call = Path(f"/proc/{worker}/syscall").read_text().split()
        except OSError:
            continue
        if call and _WRITE is not None and call[0] in _WRITE:
            found.append(worker)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def _kill_a_worker_while_it_sends(process: asyncio.subprocess.Process) -> None:
    """Kill a worker half-way through sending a chunk back: stop the import (its workers run on), wait for
    a worker blocked writing to it, kill that worker, let the import go on. (If the workers had nothing left
    to do while it was stopped, let it go on a moment and try again.)"""
    while True:
        os.kill(process.pid, signal.SIGSTOP)
        try:
            for _ in range(100):
                sending = _sending(process.pid)
                if sending:
                    os.kill(sending[0], signal.SIGKILL)
                    return
                await asyncio.sleep(0.02)
        finally:
            os.kill(process.pid, signal.SIGCONT)
        await asyncio.sleep(0.1)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the workers through /proc")
@pytest.mark.parametrize("moment", ["whenever", "while-it-sends-a-chunk-back"])
async def test_a_worker_killed_during_an_import_ends_it_cleanly_and_it_resumes(
    tmp_path: Path, folder: Path, moment: str
) -> None:
    """A worker killed while it sends a chunk back leaves half a message in its pipe: the import reads the
    end of the pipe there (with ProcessPoolExecutor's shared result pipe it waited for the rest forever)."""
    if moment != "whenever" and _WRITE is None:
        pytest.skip(f"the numbers of write(2) and sendmsg(2) on {os.uname().machine} are not known here")
    database = tmp_path / "data" / "connector.db"
    process = await _connector(
        tmp_path, "passports", "import", str(folder), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    started: list[int] = []
    try:
        async with asyncio.timeout(120):
            while _checkpoint(database) < 1000 or not _workers(process.pid):
                assert process.returncode is None, "the import ended before a worker could be killed"
                await asyncio.sleep(0.05)
            started.extend(_workers(process.pid))
            if moment == "whenever":
                os.kill(_workers(process.pid)[0], signal.SIGKILL)
            else:
                await _kill_a_worker_while_it_sends(process)
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:  # it hung: neither it nor its workers (which hold its stderr) left behind
            for pid in {*started, *_workers(process.pid), process.pid}:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await process.wait()
    said = stderr.decode()
    assert process.returncode == 1, said
    assert "Traceback" not in said, said
    stopped = re.search(r"interrupted after record ([\d,]+).*a worker process ended unexpectedly", said)
    assert stopped is not None, said
    position = int(stopped.group(1).replace(",", ""))
    assert position == _checkpoint(database) and "CONNECTOR_IMPORT_WORKERS=0" in said
    assert not [pid for pid in started if _alive(pid)], "no worker outlives the import"

    again = await _connector(
        tmp_path, "passports", "import", str(folder), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(again.communicate(), 180)
    assert again.returncode == 0, err.decode()
    assert f"after record {position:,}" in err.decode()
    assert _stored(database) == RECORDS


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the workers through /proc")
async def test_an_import_killed_leaves_no_worker_behind(tmp_path: Path, folder: Path) -> None:
    """Its workers read the end of their pipes and end (left behind, they would hold its stderr open)."""
    process = await _connector(tmp_path, "passports", "import", str(folder), stderr=asyncio.subprocess.DEVNULL)
    started: list[int] = []
    try:
        async with asyncio.timeout(120):
            while len(started) < 2:
                assert process.returncode is None, "the import ended before it could be killed"
                started = _workers(process.pid)
                await asyncio.sleep(0.05)
            process.kill()
            await process.wait()
            # (ProcessPoolExecutor's workers stayed for good.) Nothing to wait on but /proc:
            while [pid for pid in started if _alive(pid)]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        for pid in started:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


async def _one_passport(tmp_path: Path) -> str:
    passport = generate(1)
    # Far more than a pipe holds (64 KB), so the export is still writing when its reader has gone.
    passport["dismantling"]["component_part_numbers"] = [f"PART-{k:06d}" for k in range(12_000)]
    source = tmp_path / "one.json"
    source.write_bytes(orjson.dumps(passport))
    loaded = await _connector(tmp_path, "passports", "import", str(source), stdout=asyncio.subprocess.DEVNULL)
    assert await asyncio.wait_for(loaded.wait(), 60) == 0
    return str(passport["identity"]["passport_id"])


def _quiet(stderr: bytes) -> None:
    said = stderr.decode()
    assert "Traceback" not in said and "Exception ignored" not in said and "BrokenPipe" not in said, said


async def test_export_into_a_reader_that_closes_after_one_line_ends_quietly(tmp_path: Path) -> None:
    passport_id = await _one_passport(tmp_path)
    errors = tmp_path / "stderr.txt"
    pipeline = (
        f"{shlex.quote(sys.executable)} -m connector.cli passports export {shlex.quote(passport_id)} "
        f"2> {shlex.quote(str(errors))} | head -n 1; exit ${{PIPESTATUS[0]}}"
    )
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", pipeline, cwd=tmp_path, env=_env(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    assert stdout == b"{\n"
    assert process.returncode in (0, 141)
    _quiet(errors.read_bytes())


async def test_export_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    passport_id = await _one_passport(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    try:
        process = await _connector(
            tmp_path, "passports", "export", passport_id, stdout=write_end, stderr=asyncio.subprocess.PIPE
        )
    finally:
        os.close(write_end)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 141
    _quiet(stderr)
