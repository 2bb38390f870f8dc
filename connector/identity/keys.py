"""The node's signing key: created once with mode 0600, loaded on every start, named by its RFC 7638 thumbprint."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

from .errors import KeyFileError

KeyKind = Literal["Ed25519", "P-256"]

KEY_FILE_NAME: Final = "node-key.jwk"
# EdDSA, not RFC 9864's "Ed25519": EDC and most DCP peers only know the older name.
ALGORITHM: Final[dict[str, str]] = {"Ed25519": "EdDSA", "P-256": "ES256"}


@dataclass(frozen=True, slots=True)
class NodeKey:
    """A private signing key, its kind, its JWS algorithm and its stable key id (the RFC 7638 thumbprint)."""

    private: OKPKey | ECKey
    kind: KeyKind
    alg: str
    kid: str
    # Ed25519 only: libsodium's form of the private key (seed, then public key) that `signature.sign` signs with.
    ed25519_secret: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        private = self.private.private_key
        if isinstance(private, Ed25519PrivateKey):
            secret = private.private_bytes_raw() + private.public_key().public_bytes_raw()
            object.__setattr__(self, "ed25519_secret", secret)

    def public_jwk(self) -> dict[str, str]:
        """Return the public key as a JWK (no private members), with its kid."""
        jwk: dict[str, Any] = self.private.as_dict(private=False)
        return {**{k: str(v) for k, v in jwk.items() if k in {"kty", "crv", "x", "y"}}, "kid": self.kid}

    def private_jwk(self) -> dict[str, str]:
        """Return the private key as a JWK, for writing to the key file only."""
        jwk: dict[str, Any] = self.private.as_dict(private=True)
        return {**{k: str(v) for k, v in jwk.items() if k in {"kty", "crv", "x", "y", "d"}}, "kid": self.kid}

    def __repr__(self) -> str:
        # Never print private members, not even in a traceback.
        return f"NodeKey(kind={self.kind!r}, alg={self.alg!r}, kid={self.kid!r})"


def _wrap(private: OKPKey | ECKey, origin: str) -> NodeKey:
    if not private.is_private:
        raise KeyFileError(f"{origin}: holds a public key; the node needs its private key")
    if isinstance(private, OKPKey) and private.curve_name == "Ed25519":
        kind: KeyKind = "Ed25519"
    elif isinstance(private, ECKey) and private.curve_name == "P-256":
        kind = "P-256"
    else:
        raise KeyFileError(f"{origin}: unsupported key curve {private.curve_name!r}; use Ed25519 or P-256")
    return NodeKey(private, kind, ALGORITHM[kind], private.thumbprint())


def generate_key(kind: KeyKind = "Ed25519") -> NodeKey:
    """Generate a new key pair of the given kind (not stored anywhere)."""
    if kind == "Ed25519":
        return _wrap(OKPKey.generate_key("Ed25519", private=True), "generated key")
    if kind == "P-256":
        return _wrap(ECKey.generate_key("P-256", private=True), "generated key")
    raise KeyFileError(f"unsupported key kind {kind!r}; use 'Ed25519' or 'P-256'")


def load_key(text: str | bytes, origin: str = "key") -> NodeKey:
    """Load a private key given as a JWK (JSON) or PEM (PKCS#8) text; ``origin`` names it in errors."""
    raw = text.encode() if isinstance(text, str) else text
    stripped = raw.strip()
    try:
        if stripped.startswith(b"{"):
            data = json.loads(stripped)
            if not isinstance(data, dict):
                raise KeyFileError(f"{origin}: is not a JWK object")
            kty = data.get("kty")
            if kty == "OKP":
                return _wrap(OKPKey.import_key(data), origin)
            if kty == "EC":
                return _wrap(ECKey.import_key(data), origin)
            raise KeyFileError(f"{origin}: unsupported JWK kty {kty!r}; use OKP (Ed25519) or EC (P-256)")
        if stripped.startswith(b"-----BEGIN"):
            loaded = load_pem_private_key(stripped, password=None)
            if isinstance(loaded, Ed25519PrivateKey):
                return _wrap(OKPKey.import_key(stripped), origin)
            if isinstance(loaded, EllipticCurvePrivateKey) and isinstance(loaded.curve, SECP256R1):
                return _wrap(ECKey.import_key(stripped), origin)
            raise KeyFileError(f"{origin}: unsupported PEM key type; use Ed25519 or P-256")
    except (ValueError, TypeError, JoseError) as exc:
        # The exception text of a key parser may quote key material: keep only its class name.
        raise KeyFileError(f"{origin}: is not a valid private key ({type(exc).__name__})") from None
    raise KeyFileError(f"{origin}: is neither a JWK (JSON) nor a PEM private key")


def _check_private(path: Path) -> None:
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} is accessible by group or others (mode {mode:04o}); run `chmod 600 {path}`"
        )


def load_or_create_key(directory: Path, kind: KeyKind = "Ed25519") -> NodeKey:
    """Load the node key from ``directory``, creating it (mode 0600) on the first call.

    An existing key of another kind is an error, never replaced: replacing it would change the node's identity.
    """
    path = directory / KEY_FILE_NAME
    if not path.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create(path, generate_key(kind))
    _check_private(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"key file {path}: cannot be read ({exc.strerror})") from None
    key = load_key(text, origin=f"key file {path}")
    if key.kind != kind:
        raise KeyFileError(
            f"key file {path} holds a {key.kind} key but {kind} was asked for; "
            "keep the existing kind or move the file away to create a new identity"
        )
    return key


def _create(path: Path, key: NodeKey) -> None:
    # Write a private temporary file, then link it into place: linking fails if another process won the race,
    # and a reader never sees a half-written key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(key.private_jwk(), f)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
