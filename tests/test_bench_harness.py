"""The benchmark harness starts and stops a node in its own process, and the README table writer keeps to its part.

Tiny sizes, no timing assertions: what the benchmarks measure is not checked here, only that their machinery works.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import readme_table  # noqa: E402


def test_a_node_process_starts_answers_and_stops(tmp_path: Path) -> None:
    node = harness.NodeProcess(tmp_path / "node")
    seconds = node.start()
    try:
        assert seconds > 0
        assert node.process is not None
        pid = node.process.pid
        assert harness.rss_mib(pid) > 10
        assert harness.cpu_seconds(pid) > 0
        with urllib.request.urlopen(node.management + "/ready", timeout=10) as response:
            assert response.status == 200
        assert (tmp_path / "node" / "connector.db").exists()
    finally:
        code = node.stop()
    assert code == 0  # SIGTERM is a graceful stop
    assert not Path(f"/proc/{pid}").exists()  # reaped


def test_the_bare_server_serves_its_bytes_from_another_process() -> None:
    body = b'{"x": 1}' * 100
    with harness.BareServer(body) as bare:
        assert bare.process is not None
        with urllib.request.urlopen(bare.url + "/any/path", timeout=10) as response:
            assert response.read() == body
        measured = harness.load(bare.url + "/x", seconds=1, connections=2)
    assert measured.requests > 0
    assert measured.errors == 0
    assert bare.process.poll() is not None  # stopped on leaving the block


def _read_answers(sock: socket.socket, answer_length: int, count: int) -> bytes:
    sock.settimeout(10)
    received = b""
    while len(received) < answer_length * count:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {len(received)} bytes"
        received += chunk
    return received


def test_the_floor_server_answers_each_request_on_a_kept_connection() -> None:
    body = b'{"x": 1}' * 100
    with harness.BareServer(body, floor=True) as floor:
        assert floor.process is not None
        with urllib.request.urlopen(floor.url + "/any/path", timeout=10) as response:  # Connection: close
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            assert response.read() == body
        answer_length = len(body) + len(
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", floor.port), timeout=10) as sock:
            # Two pipelined GETs, then a POST whose body arrives in two pieces: three answers, none early.
            sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
            two = _read_answers(sock, answer_length, 2)
            sock.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(65536)  # the body is not complete: no answer yet
            sock.sendall(b"67890")
            third = _read_answers(sock, answer_length, 1)
        assert two.count(body) == 2
        assert two.startswith(b"HTTP/1.1 200 OK\r\n")
        assert third.endswith(body)
        measured = harness.load(floor.url + "/x", seconds=1, connections=2)
    assert measured.requests > 0
    assert measured.errors == 0
    assert floor.process.poll() is not None


def test_cpu_a_request_is_the_serving_process_time_over_the_requests_answered() -> None:
    with harness.BareServer(b'{"x": 1}' * 100) as bare:
        before = harness.cpu_seconds(bare.pid)
        measured, per_request = harness.cpu_per_request(
            [bare.pid], lambda: harness.load(bare.url + "/x", seconds=1, connections=2)
        )
        used = harness.cpu_seconds(bare.pid) - before
    assert measured.requests > 0
    # The server's own CPU over the run, by its answers: within the clock tick /proc counts in, never negative.
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert 0 < per_request * measured.requests / 1e6 <= used + tick
    assert per_request * measured.requests / 1e6 >= used - tick


def test_the_own_load_generator_counts_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCH_LOADGEN", "harness")
    node = harness.NodeProcess(tmp_path / "node")
    with node:
        measured = harness.load(node.management + "/management/v3/assets/no-such-asset", seconds=1, connections=2)
    assert measured.tool == "harness-aiohttp"
    assert measured.requests > 0
    assert measured.errors == measured.requests  # every answer was a 404


def test_results_are_written_as_json_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    harness.emit(harness.Result("a figure", 3.0, "s", 1.5, "bare", "< 2 s", False, "wrk", 3, bench="bench_x"))
    (record,) = [json.loads(line) for line in (tmp_path / "bench_x.jsonl").read_text().splitlines()]
    assert record["figure"] == "a figure"
    assert record["ratio"] == 2.0
    assert record["met"] is False


@pytest.mark.parametrize(
    ("node", "bare", "shown"),
    [
        ([4000.0, 4200.0, 4100.0], [8000.0, 8300.0, 7900.0], True),
        ([4000.0, 4200.0, 4100.0], [6806.0, 12638.0, 7950.0], False),  # a starved baseline: the ratio says nothing
        ([2000.0, 4200.0, 4100.0], [8000.0, 8300.0, 7900.0], False),
        ([4100.0], [7950.0], True),
    ],
)
def test_a_target_is_decided_only_on_steady_rounds(
    node: list[float], bare: list[float], shown: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    rate, bare_rate = sorted(node)[len(node) // 2], sorted(bare)[len(bare) // 2]
    result = harness.Result(
        "rate", rate, "req/s", bare_rate, "bare", ">= 0.5x", rate / bare_rate >= 0.5, "wrk", len(node),
        bench="bench_x", round_values=node, baseline_rounds=bare,
    )  # fmt: skip
    harness.emit(result)
    (record,) = [json.loads(line) for line in (tmp_path / "bench_x.jsonl").read_text().splitlines()]
    assert record["unsteady"] is (not shown)
    assert (record["met"] is True) is shown
    row = readme_table.render([record]).splitlines()[-1]
    assert ("not shown (rounds unsteady)" in row) is (not shown)
    assert (" met " in row) is shown


@pytest.mark.parametrize(
    ("tool", "judged"),
    [("wrk", True), (harness.HARNESS_LOADGEN, False), ("harness, process start to /ready", True)],
)
def test_a_ratio_driven_by_the_harness_generator_decides_no_target(
    tool: str, judged: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Without wrk the harness's own generator saturates before a bare server does, so the ratio flatters the node;
    # a figure the harness timed without its generator (bench_node's start-up) is judged.
    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    harness.emit(harness.Result("rate", 9000.0, "req/s", 16000.0, "bare", ">= 0.5x", True, tool, bench="bench_x"))
    (record,) = [json.loads(line) for line in (tmp_path / "bench_x.jsonl").read_text().splitlines()]
    assert record["capped"] is (not judged)
    assert (record["met"] is True) is judged
    row = readme_table.render([record]).splitlines()[-1]
    assert ("not judged" in row) is (not judged)
    assert (" met " in row) is judged


README = f"""# Title

Text before.

## Performance

Intro.

{readme_table.START}
old table
{readme_table.END}

## Next

Text after | with a pipe.
"""


def test_the_table_writer_rewrites_only_its_section(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    lines = [
        {"bench": "bench_node", "figure": "start-up", "median": 1.5, "unit": "s", "baseline": 0.5, "ratio": 3.0},
        {"bench": "bench_node", "figure": "start-up", "median": 2.5, "unit": "s", "target": "< 2 s", "met": False},
        {"bench": "bench_x", "figure": "a | b", "median": 1200.0, "unit": "req/s"},
    ]
    (results / "bench_node.jsonl").write_text("\n".join(json.dumps(x) for x in lines[:2]) + "\n")
    (results / "bench_x.jsonl").write_text(json.dumps(lines[2]) + "\n")
    readme = tmp_path / "README.md"
    readme.write_text(README)

    assert readme_table.main(["--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    head, rest = text.split(readme_table.START)
    table, tail = rest.split(readme_table.END)
    assert head == README.split(readme_table.START)[0]
    assert tail == README.split(readme_table.END)[1]
    assert "old table" not in table
    rows = [row for row in table.strip().splitlines() if row.startswith("| ")]
    assert len(rows) == 3  # header and two figures: the newer start-up line replaced the older
    assert "2.50 s" in rows[1] and "**missed**" in rows[1]
    assert "a \\| b" in rows[2] and "1,200 req/s" in rows[2]


def test_the_table_writer_refuses_a_readme_without_its_markers(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "b.jsonl").write_text(json.dumps({"figure": "f", "median": 1.0, "unit": "s"}) + "\n")
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nNo markers.\n")
    assert readme_table.main(["--results", str(results), "--readme", str(readme)]) == 1
    assert readme.read_text() == "# Title\n\nNo markers.\n"
    with pytest.raises(readme_table.MarkersMissing):
        readme_table.rewrite(f"{readme_table.END}\n{readme_table.START}\n", "table")


@pytest.mark.parametrize("tool", ["wrk", "harness"])
def test_each_authorization_is_sent_once(tool: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A DSP peer sends a fresh token per request: the load generator sends each given value once, and a request
    # past the last one carries "exhausted" (the node refuses it, so a run that ran out shows errors).
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if tool == "wrk" and harness.shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    monkeypatch.setenv("BENCH_LOADGEN", tool)
    seen: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tokens = [f"Bearer t{i}" for i in range(12)]
        url = f"http://127.0.0.1:{server.server_address[1]}/x"
        measured = harness.load(url, seconds=1, connections=2, method="POST", body=b"{}", authorizations=tokens)
    finally:
        server.shutdown()
        server.server_close()
    assert measured.requests > 0
    sent = [s for s in seen if s != "exhausted"]
    assert len(sent) == len(set(sent))  # none twice
    assert set(sent) <= set(tokens)
    assert len(seen) > len(tokens)  # a second of requests outruns 12 tokens
    assert "exhausted" in seen and len(sent) >= len(tokens) - 4  # wrk may lose the ones it made ready last
