"""The README's two-node quick start (scripts/two-node-demo.sh) works as written, on free ports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port


@pytest.mark.skipif(shutil.which("curl") is None, reason="the quick start uses curl")
def test_two_node_quick_start(tmp_path: Path) -> None:
    connector = Path(sys.executable).with_name("connector")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")},
        "DEMO_CONNECTOR": str(connector),
        "PACKMAKER_PORT": str(free_port()),
        "PACKMAKER_ADMIN": str(free_port()),
        "RECYCLER_PORT": str(free_port()),
        "RECYCLER_ADMIN": str(free_port()),
    }
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "two-node-demo.sh"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = tmp_path / "packmaker.log"
    assert result.returncode == 0, result.stderr + (log.read_text()[-3000:] if log.exists() else "")
    catalog = json.loads(result.stdout)
    assert catalog["dcat:dataset"]["@id"] == "passports-model-x"
    assert (
        catalog["dcat:dataset"]["odrl:hasPolicy"]["odrl:permission"]["odrl:constraint"]["odrl:rightOperand"]
        == "recycler"
    )
