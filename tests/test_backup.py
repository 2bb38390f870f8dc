"""`connector backup` and `connector restore`: a node with passports, an agreement, an EDR and a secret data
address is backed up while it runs, restored into a new data directory, and the restored node serves them
(its sealed secrets open with the restored key). A restore never overwrites."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import aiohttp
import pytest

from connector.app import running_node
from connector.domain import passport as model
from tests.conftest import API_KEY, EDC_CONTEXT, Management, NodeFactory, free_port
from tests.test_two_nodes_catalog import _grant_role, _provider
from tests.test_two_nodes_passports import V1, _negotiate, _pull

SECRET = "Bearer backend-secret-0123456789"


def _connector(
    *args: str, data_dir: Path, cwd: Path, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env.update(CONNECTOR_DATA_DIR=str(data_dir), CONNECTOR_LOG_FORMAT="text")
    if database_url is not None:
        env["CONNECTOR_DATABASE_URL"] = database_url
    command = [str(Path(sys.executable).with_name("connector")), *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


async def test_a_running_node_round_trips_into_a_new_data_directory(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    from connector.identity import issuer

    maker, issuer_dir = await _provider(node_factory, tmp_path)
    maker_api = Management(http, maker)
    documents = [model.generate(i) for i in range(6)]
    assert (await maker_api.call("POST", f"{V1}/import", documents))[1]["new"] == 6
    assert (await maker_api.call("POST", f"{V1}/publish", {}))[0] == 200
    asset = {
        "@context": EDC_CONTEXT,
        "@id": "with-a-secret",
        "properties": {"name": "backend behind a key"},
        "dataAddress": {
            "type": "HttpData",
            "baseUrl": "https://backend.example.com/x",
            "authKey": "Authorization",
            "authCode": SECRET,
        },
    }
    assert (await maker_api.call("POST", "/management/v3/assets", asset))[0] == 200

    recycler = await node_factory(api_key=API_KEY, trusted_issuers=issuer.load_registry(issuer_dir).did)
    recycler_api = Management(http, recycler)
    jwt, _ = _grant_role(issuer_dir, recycler.settings.effective_did, "recycler")
    assert (await recycler_api.call("POST", "/management/v1/credentials", {"credential": jwt}))[0] == 200
    model_id = model.parse_passport(documents[0]).model_id
    agreement = await _negotiate(recycler_api, maker, f"passports-{model_id}-legitimate-interest")
    endpoint, token = await _pull(recycler_api, maker, agreement)
    status, transfers = await recycler_api.call("POST", "/management/v3/transferprocesses/request", {})
    assert status == 200
    (transfer_id,) = [t["@id"] for t in transfers if t.get("contractId") == agreement]

    # Backed up while both run.
    archives = {}
    for name, node in (("maker", maker), ("recycler", recycler)):
        archive = tmp_path / f"{name}.tar.gz"
        done = _connector("backup", "--output", str(archive), data_dir=node.settings.data_dir, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "backed up the sqlite database" in done.stdout
        assert archive.stat().st_mode & 0o077 == 0  # it holds the private key
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
        assert {"manifest.json", "database/connector.db", "files/node-key.jwk"} <= names
        archives[name] = archive
    with tarfile.open(archives["maker"]) as tar:
        assert any(n.startswith("files/issuer/") for n in tar.getnames())
        database = tar.extractfile("database/connector.db")
        assert database is not None
        raw = database.read()
    # The secret is in the database sealed, never in clear: only the restored key opens it.
    assert SECRET.encode() not in raw and b"sealed:v1:" in raw

    # Restored into new data directories; started on other ports with the same public URL (the same DID).
    restored = {}
    for name, node in (("maker", maker), ("recycler", recycler)):
        target = tmp_path / f"restored-{name}"
        done = _connector("restore", str(archives[name]), data_dir=target, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        restored[name] = node.settings.model_copy(
            update={"data_dir": target, "protocol_port": free_port(), "management_port": 0}
        )
    async with running_node(restored["maker"]) as maker2, running_node(restored["recycler"]) as recycler2:
        maker2_api, recycler2_api = Management(http, maker2), Management(http, recycler2)
        assert maker2.identity.did == maker.identity.did
        status, listed = await maker2_api.call("GET", f"{V1}?limit=100")
        assert status == 200 and len(listed["items"]) == 6
        status, agreements = await maker2_api.call("POST", "/management/v3/contractagreements/request", {})
        assert status == 200 and agreement in [a["@id"] for a in agreements]
        # The secret data address opens with the restored key.
        async with maker2.store.transaction() as tx:
            stored = await tx.assets.get("with-a-secret")
        assert stored is not None and SECRET in stored.data_address.secrets.values()
        # The consumer's EDR (its token sealed in the database) opens, and still pulls from the provider.
        status, address = await recycler2_api.call("GET", f"/management/v3/edrs/{transfer_id}/dataaddress")
        assert status == 200, address
        assert address["authorization"] == token and address["endpoint"] == endpoint
        async with http.get(endpoint + "?limit=1", headers={"Authorization": address["authorization"]}) as response:
            assert response.status == 200
        assert (restored["maker"].data_dir / "issuer").is_dir()

    # A restore never overwrites: the restored directory is not empty now.
    again = _connector("restore", str(archives["maker"]), data_dir=restored["maker"].data_dir, cwd=tmp_path)
    assert again.returncode == 1 and "exists and is not empty" in again.stderr


def test_a_damaged_archive_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "node-key.jwk").write_text("{}")
    os.chmod(data / "node-key.jwk", 0o600)
    archive = tmp_path / "only-files.tar.gz"
    done = _connector("backup", "--no-database", "--output", str(archive), data_dir=data, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    again = _connector("backup", "--no-database", "--output", str(archive), data_dir=data, cwd=tmp_path)
    assert again.returncode == 1 and "never overwrites" in again.stderr
    # A member changed after the backup (its manifest entry no longer matches).
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    (unpacked / "files" / "node-key.jwk").write_text('{"kty": "OKP"}')
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(damaged, "w:gz") as tar:
        for name in ("manifest.json", "files/node-key.jwk"):
            tar.add(unpacked / name, arcname=name)
    target = tmp_path / "target"
    refused = _connector("restore", str(damaged), data_dir=target, cwd=tmp_path)
    assert refused.returncode == 1 and "does not match its checksum" in refused.stderr
    assert not target.exists()
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not an archive")
    refused = _connector("restore", str(garbage), data_dir=target, cwd=tmp_path)
    assert refused.returncode == 1 and "not a readable backup archive" in refused.stderr
    assert not target.exists()


@pytest.mark.postgres
async def test_a_postgres_node_round_trips_through_pg_dump(
    node_factory: NodeFactory, http: aiohttp.ClientSession, tmp_path: Path, postgres_url: str
) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("PostgreSQL's client tools (pg_dump, pg_restore) are not installed")
    from tests.conftest import POSTGRES_URL, _create_database, _drop_database, _with_database

    node = await node_factory(api_key=API_KEY, database_url=postgres_url, database_auto_migrate=True)
    api = Management(http, node)
    asset = {
        "@context": EDC_CONTEXT,
        "@id": "with-a-secret",
        "properties": {"name": "backend behind a key"},
        "dataAddress": {
            "type": "HttpData",
            "baseUrl": "https://backend.example.com/x",
            "authKey": "Authorization",
            "authCode": SECRET,
        },
    }
    assert (await api.call("POST", "/management/v3/assets", asset))[0] == 200
    assert (await api.call("POST", f"{V1}/import", [model.generate(1)]))[1]["new"] == 1
    archive = tmp_path / "pg.tar.gz"
    done = _connector(
        "backup", "--output", str(archive), data_dir=node.settings.data_dir, cwd=tmp_path, database_url=postgres_url
    )
    assert done.returncode == 0, done.stderr
    assert "backed up the postgresql database" in done.stdout
    assert POSTGRES_URL is not None
    name = await _create_database(POSTGRES_URL)
    try:
        fresh = _with_database(POSTGRES_URL, name)
        target = tmp_path / "restored"
        done = _connector("restore", str(archive), data_dir=target, cwd=tmp_path, database_url=fresh)
        assert done.returncode == 0, done.stderr
        # Into a database that is no longer empty: refused.
        again = _connector("restore", str(archive), data_dir=tmp_path / "other", cwd=tmp_path, database_url=fresh)
        assert again.returncode == 1 and "not empty" in again.stderr
        settings = node.settings.model_copy(
            update={"data_dir": target, "database_url": fresh, "protocol_port": free_port(), "management_port": 0}
        )
        async with running_node(settings) as restored:
            async with restored.store.transaction() as tx:
                stored = await tx.assets.get("with-a-secret")
            assert stored is not None and SECRET in stored.data_address.secrets.values()
            status, listed = await Management(http, restored).call("GET", f"{V1}?limit=10")
            assert status == 200 and len(listed["items"]) == 1
    finally:
        await _drop_database(POSTGRES_URL, name)
