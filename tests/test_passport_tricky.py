"""The tricky-records suite: every case of `tests.passport_records` through every import path, each record
getting the same verdict and a reason matching the same pattern on each, and nothing of a refused record
stored anywhere.

The paths: the CLI with one file per import, a JSON Lines file (default batch and `--batch 1`, so that a
repeated id falls in another batch), a folder of files, a JSON array file; the import endpoint with JSON
Lines and with a JSON array; and a POST per record. Every path runs once for the module (a CLI run per
path, or per record for the file path; a real node for the HTTP paths), and each (case, path) pair is its
own test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connector.services.passports import load, record_of
from tests import passport_records as tricky
from tests.import_paths import PathResult, Verdict, cli_import, cli_import_in_workers, http_import

Runner = Callable[[Path, list[bytes]], PathResult]
CASES = tricky.cases()

# path name -> (how records are sent, whether each goes alone: "file", "post" or None, what a record is in it)
PATHS: dict[str, tuple[Runner, str | None, str]] = {
    "cli-file": (lambda work, raw: cli_import(work, "file", raw), "file", "file"),
    "cli-jsonl": (lambda work, raw: cli_import(work, "lines", raw), None, "line"),
    "cli-jsonl-batch-1": (lambda work, raw: cli_import(work, "lines", raw, "--batch", "1"), None, "line"),
    "cli-folder": (lambda work, raw: cli_import(work, "folder", raw), None, "file"),
    "cli-array": (lambda work, raw: cli_import(work, "array", raw), None, "element"),
    # As a large source is imported: parsed, checked and mapped in worker processes.
    "cli-jsonl-workers": (lambda work, raw: cli_import_in_workers(work, "lines", raw), None, "line"),
    "cli-folder-workers": (lambda work, raw: cli_import_in_workers(work, "folder", raw), None, "file"),
    "api-ndjson": (lambda work, raw: http_import(work, "lines", raw, tricky.MAX_BYTES), None, "line"),
    "api-array": (lambda work, raw: http_import(work, "array", raw, tricky.MAX_BYTES), None, "element"),
    "api-single-post": (lambda work, raw: http_import(work, "single", raw, tricky.MAX_BYTES), "post", "body"),
}


def _sent(path: str) -> list[tricky.Case]:
    """Return the cases a path is given: an array cannot hold a record cut short, and a file holding an
    array is a source of many records."""
    unit = PATHS[path][2]
    return [case for case in CASES if (case.in_arrays or unit != "element") and (case.in_files or unit != "file")]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[PathResult, dict[str, list[Verdict]]]]:
    """Run every path once; return its result and the verdicts of each case's records."""
    done: dict[str, tuple[PathResult, dict[str, list[Verdict]]]] = {}
    for name, (runner, _, _) in PATHS.items():
        cases = _sent(name)
        raw = [record.raw for case in cases for record in case.records]
        result = runner(tmp_path_factory.mktemp(name), raw)
        assert len(result.verdicts) == len(raw), name
        by_case: dict[str, list[Verdict]] = {}
        verdicts = iter(result.verdicts)
        for case in cases:
            by_case[case.name] = [next(verdicts) for _ in case.records]
        done[name] = (result, by_case)
    return done


def _pairs() -> list[Any]:
    return [
        pytest.param(case, path, id=f"{case.name}|{path}") for case in CASES for path in PATHS if case in _sent(path)
    ]


@pytest.mark.parametrize(("case", "path"), _pairs())
def test_every_path_gives_the_same_verdict_and_reason(
    case: tricky.Case, path: str, results: dict[str, tuple[PathResult, dict[str, list[Verdict]]]]
) -> None:
    _, by_case = results[path]
    got = by_case[case.name]
    for number, ((accepted, reason), verdict) in enumerate(zip(case.expected(PATHS[path][1]), got, strict=True)):
        said = verdict.text()
        assert verdict.accepted == accepted, f"record {number}: {'accepted' if verdict.accepted else said}"
        if not accepted:
            assert re.search(reason, said), f"record {number}: {said!r} does not say {reason!r}"


def _document(raw: bytes) -> Any:
    import orjson

    return orjson.loads(raw)


@pytest.mark.parametrize("path", list(PATHS))
def test_nothing_of_a_refused_record_is_stored(
    path: str, results: dict[str, tuple[PathResult, dict[str, list[Verdict]]]]
) -> None:
    """What a path stored is exactly what it accepted, in order: a refused record left nothing behind."""
    result, by_case = results[path]
    expected: dict[str, tuple[int, dict[str, Any]]] = {}
    for case in _sent(path):
        for record, verdict in zip(case.records, by_case[case.name], strict=True):
            if not verdict.accepted:
                continue
            stored = record_of(load(_document(record.raw)))
            versions, data = expected.get(stored.id, (0, None))
            expected[stored.id] = (versions + (data != stored.data), stored.data)
    assert result.stored.keys() == expected.keys()
    for passport_id, (versions, data) in expected.items():
        assert result.stored[passport_id] == (versions, data), passport_id
