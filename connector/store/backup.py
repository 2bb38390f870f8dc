"""`connector backup` and `connector restore`: the database and the node's own files in one archive.

A backup holds what a node cannot be rebuilt without:

- the database, as a consistent snapshot taken while the node runs: SQLite's online backup API (a copy of
  one committed state, whatever the node writes meanwhile), or `pg_dump --format=custom` (one transaction
  snapshot) for PostgreSQL;
- the node key (from the data directory, or CONNECTOR_KEY_FILE): without it the node's DID changes and the
  sealed secrets in the database (EDR tokens, push authorizations, secret data addresses) never open again;
- every other file of the data directory: the issuer folder (its key, registry and status list), a BPN
  directory file kept there, anything the operator put there.

The archive is a gzip'd tar with `manifest.json` (what it holds and each file's SHA-256). It holds the node's
private key, so it is written mode 0600 and must be kept as the key is (docs/operations.md).

A restore goes into a NEW data directory (and, on PostgreSQL, an empty database): it refuses to overwrite
anything, checks every file against the manifest first, and writes nothing when a check fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

FORMAT = "battery-passport-connector backup v1"
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/connector.db"
POSTGRES_MEMBER = "database/postgres.dump"
FILES = "files/"
KEY_MEMBER = "key/node-key"
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


class BackupError(Exception):
    """A backup or restore cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Where a node keeps what a backup holds (from its settings)."""

    data_dir: Path
    database_url: str
    key_file: Path | None  # CONNECTOR_KEY_FILE, when the key lives outside the data directory


@dataclass(frozen=True, slots=True)
class Summary:
    """What a backup or restore did, for the command's one-line answer."""

    archive: Path
    database: str
    files: int
    schema_revision: str | None


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _postgres_env(url: str) -> dict[str, str]:
    """Return libpq's environment for a URL: the password travels in PGPASSWORD, never on a command line."""
    parsed = make_url(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    fields = {
        "PGHOST": parsed.host,
        "PGPORT": str(parsed.port) if parsed.port else None,
        "PGUSER": parsed.username,
        "PGPASSWORD": parsed.password,
        "PGDATABASE": parsed.database,
    }
    env.update({k: str(v) for k, v in fields.items() if v})
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed: install PostgreSQL's client tools (the same major version as the server, "
            f"e.g. `apt-get install postgresql-client`), or back the database up with your provider's tools and "
            "use `connector backup --no-database` for the node's files (docs/operations.md)"
        )
    return found


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        raise BackupError(f"{what} failed: {detail[-1] if detail else f'exit status {result.returncode}'}")


def _sqlite_snapshot(source: Path, target: Path) -> str | None:
    """Copy a live SQLite database with the online backup API; return its schema revision."""
    if not source.exists():
        raise BackupError(f"the SQLite database {source} does not exist (has this node ever started?)")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            check = dst.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise BackupError(f"the copy of {source} fails SQLite's integrity check: {check}")
            try:
                row = dst.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.DatabaseError:
                row = None
        finally:
            dst.close()
    finally:
        src.close()
    return str(row[0]) if row else None


def _data_files(plan: Plan, skip: set[Path]) -> Iterator[tuple[Path, str]]:
    """Yield the data directory's regular files (path, name in the archive), leaving out the database's own."""
    if not plan.data_dir.exists():
        return
    for path in sorted(plan.data_dir.rglob("*")):
        resolved = path.resolve()
        if path.is_symlink() or not path.is_file() or resolved in skip:
            continue
        yield path, FILES + path.relative_to(plan.data_dir).as_posix()


def backup(plan: Plan, archive: Path, *, database: bool = True) -> Summary:
    """Write one archive with the database snapshot, the node key and the data directory's files."""
    if archive.exists():
        raise BackupError(f"{archive} exists; a backup never overwrites a file (choose another --output)")
    sqlite = _is_sqlite(plan.database_url)
    skip = {archive.resolve()}
    if sqlite:
        db_path = _sqlite_path(plan.database_url)
        skip |= {Path(str(db_path) + suffix).resolve() for suffix in _SQLITE_SUFFIXES}
    members: list[tuple[Path, str]] = list(_data_files(plan, skip))
    with tempfile.TemporaryDirectory(prefix="connector-backup-") as work:
        revision: str | None = None
        kind = "none"
        if database and sqlite:
            snapshot = Path(work) / "connector.db"
            revision = _sqlite_snapshot(db_path, snapshot)
            members.append((snapshot, SQLITE_MEMBER))
            kind = "sqlite"
        elif database:
            dump = Path(work) / "postgres.dump"
            env = _postgres_env(plan.database_url)
            _run(
                [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", str(dump)],
                env,
                "pg_dump",
            )
            members.append((dump, POSTGRES_MEMBER))
            kind = "postgresql"
        if plan.key_file is not None:
            if not plan.key_file.is_file():
                raise BackupError(f"CONNECTOR_KEY_FILE {plan.key_file} cannot be read")
            members.append((plan.key_file, KEY_MEMBER))
        elif not any(name == FILES + "node-key.jwk" for _, name in members):
            raise BackupError(f"no node key in {plan.data_dir} (has this node ever started?); nothing to back up")
        manifest = {
            "format": FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "database": kind,
            "schema_revision": revision,
            "key_file": plan.key_file is not None,
            "files": {name: _sha256(path) for path, name in members},
        }
        _write_archive(archive, manifest, members)
    files = sum(1 for _, name in members if name.startswith(FILES))
    return Summary(archive, kind, files, revision)


def _write_archive(archive: Path, manifest: dict[str, Any], members: list[tuple[Path, str]]) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f".{archive.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds the private key
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            body = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(body), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(body))
            for path, name in members:
                entry = tar.gettarinfo(str(path), arcname=name)
                entry.uid = entry.gid = 0
                entry.uname = entry.gname = ""
                with path.open("rb") as f:
                    tar.addfile(entry, f)
        os.link(partial, archive)
    except FileExistsError:
        raise BackupError(f"{archive} appeared while the backup was written; it was left as it is") from None
    finally:
        partial.unlink(missing_ok=True)


def _read_archive(archive: Path, into: Path) -> dict[str, Any]:
    """Extract an archive into a private folder, checking its manifest and every file's hash."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            tar.extractall(into, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{archive} is not a readable backup archive ({exc})") from None
    try:
        manifest = json.loads((into / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BackupError(f"{archive} has no readable {MANIFEST}; it is not a connector backup") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{archive} is not a backup of this format ({FORMAT})")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BackupError(f"{archive}: its manifest lists no files")
    for name, digest in files.items():
        path = into / name
        if not path.is_file() or _sha256(path) != digest:
            raise BackupError(f"{archive}: {name} is missing or does not match its checksum; the archive is damaged")
    return manifest


def _empty(directory: Path) -> bool:
    return not directory.exists() or (directory.is_dir() and not any(directory.iterdir()))


def restore(plan: Plan, archive: Path, *, postgres_empty: bool | None = None) -> Summary:
    """Restore an archive into a new data directory (and an empty PostgreSQL database); never overwrite."""
    if not archive.is_file():
        raise BackupError(f"{archive}: no such backup archive")
    if not _empty(plan.data_dir):
        raise BackupError(
            f"the data directory {plan.data_dir} exists and is not empty; a restore makes a new one "
            "(set CONNECTOR_DATA_DIR to a new directory, or move this one away first)"
        )
    if plan.key_file is not None and plan.key_file.exists():
        raise BackupError(f"CONNECTOR_KEY_FILE {plan.key_file} exists; a restore never replaces a node key")
    sqlite = _is_sqlite(plan.database_url)
    with tempfile.TemporaryDirectory(prefix="connector-restore-") as work:
        staged = Path(work)
        manifest = _read_archive(archive, staged)
        kind = manifest.get("database")
        if kind == "sqlite" and not sqlite:
            raise BackupError("the backup holds a SQLite database but CONNECTOR_DATABASE_URL names PostgreSQL")
        if kind == "postgresql" and sqlite:
            raise BackupError("the backup holds a PostgreSQL dump: set CONNECTOR_DATABASE_URL to an empty database")
        if sqlite:
            db_path = _sqlite_path(plan.database_url)
            if any(Path(str(db_path) + s).exists() for s in _SQLITE_SUFFIXES):
                raise BackupError(f"the SQLite database {db_path} exists; a restore never overwrites a database")
        elif kind == "postgresql" and postgres_empty is False:
            raise BackupError(
                "the PostgreSQL database in CONNECTOR_DATABASE_URL is not empty; restore into a new database "
                "(createdb) so nothing is overwritten"
            )
        # Every check passed: write.
        plan.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        files = 0
        for name in manifest["files"]:
            if name.startswith(FILES):
                target = plan.data_dir / name.removeprefix(FILES)
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                _copy_private(staged / name, target)
                files += 1
        if KEY_MEMBER in manifest["files"]:
            target = plan.key_file or plan.data_dir / "node-key.jwk"
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _copy_private(staged / KEY_MEMBER, target)
        if kind == "sqlite":
            db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _copy_private(staged / SQLITE_MEMBER, db_path)
        elif kind == "postgresql":
            env = _postgres_env(plan.database_url)
            dump = str(staged / POSTGRES_MEMBER)
            _run(
                [
                    _tool("pg_restore"),
                    "--no-owner",
                    "--no-privileges",
                    "--exit-on-error",
                    "--dbname",
                    env.get("PGDATABASE", ""),
                    dump,
                ],
                env,
                "pg_restore",
            )
    return Summary(archive, str(kind), files, manifest.get("schema_revision"))


def _copy_private(source: Path, target: Path) -> None:
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupError(f"{target} exists; a restore never overwrites a file") from None
    with os.fdopen(fd, "wb") as out, source.open("rb") as f:
        shutil.copyfileobj(f, out)
    with contextlib.suppress(OSError):
        os.chmod(target, 0o600)
