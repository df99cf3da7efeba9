"""Artifact integrity: SHA-256 plus an HMAC-SHA256 signature, checked before anything is loaded."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import warnings
from pathlib import Path

from odyssey.hashing import sha256_bytes

class SignatureError(ValueError):
    """An artifact's hash or signature does not match: it was changed or signed with another key."""


def existing_key(key_file: Path, key: str | None = None) -> bytes | None:
    """The given key, else the one in `key_file`, else None (nothing is created)."""
    if key and key.strip():
        return key.strip().encode()
    return key_file.read_text().strip().encode() if key_file.exists() else None


def load_or_create_key(key_file: Path, key: str | None = None) -> bytes:
    """The given key, else the one in `key_file` (created, with a warning, on first use: fine for
    one machine, not for a team; set ODYSSEY_SIGNING_KEY to share one)."""
    found = existing_key(key_file, key)
    if found is not None:
        return found
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(secrets.token_hex(32))
    os.chmod(key_file, 0o600)
    warnings.warn(f"no signing key was given (ODYSSEY_SIGNING_KEY): generated a local one at {key_file}",
                  stacklevel=2)
    return key_file.read_text().strip().encode()


def sign(data: bytes, key: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def signature_matches(data: bytes, key: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(data, key), signature)


def verify(data: bytes, key: bytes, sha256: str, signature: str, name: str = "artifact") -> None:
    """Raise SignatureError unless both the hash and the signature match."""
    actual = sha256_bytes(data)
    if actual != sha256:
        raise SignatureError(f"{name}: SHA-256 mismatch (expected {sha256[:12]}…, got {actual[:12]}…)")
    if not signature_matches(data, key, signature):
        raise SignatureError(f"{name}: HMAC signature does not verify (tampered, or signed with another key)")
