"""The content digest of a passport's node JSON, as the store writes it (decision 0019).

Its own module, with nothing of the store's: a bulk import's worker process computes it and should not import
the store (SQLAlchemy and every repository) to do so; `connector.store.passports` takes it from here.
"""

from __future__ import annotations

import base64
import hashlib

# SHA-256 of the bytes the store writes (orjson's compact encoding, the passport's own key order), named by its
# scheme, as Subresource Integrity spells a digest: `sha256-<base64>`, 51 characters. Databases written before
# it hold the former scheme, 64 hexadecimal characters of SHA-256 over the sorted-key encoding: a row with one
# of those is compared by that scheme (`connector.store.passports.same_content`), so an unchanged passport
# stays unchanged when it is imported again.
DIGEST_SCHEME = "sha256-"


def digest_of(encoded: bytes) -> str:
    """Return the content digest of a passport's node JSON as the store writes it (orjson, compact)."""
    return DIGEST_SCHEME + base64.b64encode(hashlib.sha256(encoded).digest()).decode()
