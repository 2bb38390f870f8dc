"""The suite is self-contained: it reads only files inside the repository, and its copies of the standards'
files (tests/data) are complete, byte-exact, licensed and listed."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.conftest import DATA, REPO, data_path

# Ways a module could reach a folder beside the repository: "../shared", "..", "shared" as path parts, or a
# parent of the repository joined with a name ("REPO.parent / 'shared'", "parents[2] / 'shared/...'").
OUTSIDE = [
    re.compile(r"\.\.[/\\]+shared"),
    re.compile(r"""["']\.\.["']\s*[/,]\s*["']shared"""),
    re.compile(r"""\bparents?\b[^\n]*?["']shared(?:["'/\\])"""),
]
# Development code that runs from a clone: the tests and the benchmarks.
SCANNED = [REPO / "tests", REPO / "bench"]
# Not copies of upstream files: the list of sources and the manifest itself.
OWN_FILES = {"SOURCES.md", "MANIFEST.sha256"}


def _modules() -> list[Path]:
    this = Path(__file__).resolve()  # its examples of what the check finds are not reads
    return sorted(p for root in SCANNED for p in root.rglob("*.py") if DATA not in p.parents and p != this)


def _manifest() -> dict[str, str]:
    entries = {}
    for line in data_path("MANIFEST.sha256").read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ", 1)
        entries[name] = digest
    return entries


def outside_references(text: str) -> list[str]:
    """Return the lines of `text` that reach outside the repository for a folder beside it."""
    return [line.strip() for line in text.splitlines() if any(p.search(line) for p in OUTSIDE)]


@pytest.mark.parametrize(
    "line",
    [
        'SHARED = REPO.parent / "shared"',
        "SHARED = Path(__file__).resolve().parents[2] / '..' / 'shared'",
        'example = Path(__file__).resolve().parents[2] / "shared/data/passports"',
        'path = os.path.join(here, "..", "shared", "data")',
        "See ../shared/reference/dsp-tck.md for the cases.",
    ],
)
def test_the_check_finds_each_way_out(line: str) -> None:
    assert outside_references(line) == [line]


def test_the_check_leaves_the_word_alone() -> None:
    assert outside_references("# One format node per transfer type, shared by every distribution.") == []


def test_no_test_or_benchmark_reads_outside_the_repository() -> None:
    found = {
        str(path.relative_to(REPO)): hits
        for path in _modules()
        if (hits := outside_references(path.read_text(encoding="utf-8")))
    }
    assert found == {}, "read the file from tests/data through tests.conftest.data_path instead"


def test_a_missing_data_file_is_an_error_not_a_skip() -> None:
    with pytest.raises(FileNotFoundError, match=r"tests/data/standards/no-such-standard is missing"):
        data_path("standards", "no-such-standard")


def test_every_data_file_is_in_the_manifest_with_its_hash() -> None:
    manifest = _manifest()
    present = {
        path.relative_to(DATA).as_posix(): path
        for path in DATA.rglob("*")
        if path.is_file() and path.name not in OWN_FILES
    }
    assert sorted(set(present) - set(manifest)) == [], "files in tests/data that MANIFEST.sha256 does not list"
    assert sorted(set(manifest) - set(present)) == [], "files MANIFEST.sha256 lists that tests/data lacks"
    changed = [
        name for name, path in present.items() if hashlib.sha256(path.read_bytes()).hexdigest() != manifest[name]
    ]
    assert changed == [], "files that are no longer byte-exact copies"


def test_every_source_has_its_licence_and_its_entry_in_sources() -> None:
    sources = data_path("SOURCES.md").read_text(encoding="utf-8")
    folders = sorted({"/".join(name.split("/")[:2]) for name in _manifest()})
    assert folders, "MANIFEST.sha256 is empty"
    for folder in folders:
        _area, source = folder.split("/")
        licences = [p.name for p in (DATA / folder).iterdir() if p.is_file()]
        # DCAT-AP has no LICENSE file: its README states the licence (see SOURCES.md).
        assert any(n.startswith("LICENSE") for n in licences) or licences == ["README.md"], folder
        assert f"`{source}/`" in sources, f"{folder} is not described in tests/data/SOURCES.md"
