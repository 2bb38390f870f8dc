"""The node key file: created private, refused when readable by others, stable across loads."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from connector.identity.keys import KEY_FILE_NAME, load_key, load_or_create_key

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@posix_only
@pytest.mark.parametrize("kind", ["Ed25519", "P-256"])
def test_key_is_created_with_mode_0600_and_reloaded_unchanged(tmp_path: Path, kind: str) -> None:
    directory = tmp_path / "keys"
    key = load_or_create_key(directory, kind)  # type: ignore[arg-type]
    path = directory / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_key(directory, kind)  # type: ignore[arg-type]
    assert again.kid == key.kid
    assert again.public_jwk() == key.public_jwk()
    assert key.alg == {"Ed25519": "EdDSA", "P-256": "ES256"}[kind]
    assert [p.name for p in directory.iterdir()] == [KEY_FILE_NAME]  # no temporary file left behind


def test_kid_is_the_rfc7638_thumbprint_and_public_jwk_has_no_private_member(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    jwk = key.public_jwk()
    assert "d" not in jwk
    # RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace, base64url.
    canonical = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":"))
    digest = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert jwk["kid"] == key.kid == digest
    assert key.private_jwk()["d"] not in repr(key)


@posix_only
def test_group_readable_key_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    path = tmp_path / KEY_FILE_NAME
    path.chmod(0o644)
    with pytest.raises(Exception, match=r"chmod 600") as info:
        load_or_create_key(tmp_path)
    assert str(path) in str(info.value) and "0644" in str(info.value)


def test_key_of_another_kind_is_not_replaced(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path, "Ed25519")
    with pytest.raises(Exception, match="holds a Ed25519 key but P-256"):
        load_or_create_key(tmp_path, "P-256")
    assert load_or_create_key(tmp_path).kid == key.kid


def test_explicit_pem_and_jwk_load_the_same_key(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    pem = key.private.as_pem(private=True)
    assert load_key(pem).kid == key.kid
    assert load_key(json.dumps(key.private_jwk())).kid == key.kid


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not a key", "neither a JWK"),
        ('{"kty": "RSA", "n": "x", "e": "AQAB"}', "unsupported JWK kty"),
        ('{"kty": "OKP", "crv": "Ed25519", "x": "!!", "d": "!!"}', "valid private key"),
    ],
)
def test_garbage_key_text_is_refused(text: str, message: str) -> None:
    with pytest.raises(Exception, match=message):
        load_key(text, origin="CONNECTOR_KEY")


def test_public_only_jwk_is_refused(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    with pytest.raises(Exception, match="public key"):
        load_key(json.dumps(key.public_jwk()))
