"""Artifact integrity: SHA-256 plus an HMAC-SHA256 signature, checked before anything is loaded;
and signed manifests: one per stored model, naming every file a load reads with its SHA-256 and
the model and run it belongs to, under one HMAC."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
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


def canonical_json(value) -> bytes:
    """The one byte form of a JSON value that is signed: sorted keys, no spaces, as stored values
    read back (tuples as lists)."""
    return json.dumps(json.loads(json.dumps(value)), sort_keys=True, separators=(",", ":")).encode()


MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """Every file one load reads (file name -> SHA-256) and whose they are: the kind of model,
    the registered model (or asset) name, its subject (ticker, product) and the MLflow run the
    files were logged in ("" outside MLflow), signed as one."""

    kind: str
    model: str
    subject: str
    run_id: str
    model_file: str  # the file gate verdicts name by its SHA-256
    files: dict[str, str] = field(default_factory=dict)
    signature: str = ""

    @property
    def model_sha256(self) -> str:
        return self.files[self.model_file]

    def payload(self) -> bytes:
        return canonical_json({k: v for k, v in dataclasses.asdict(self).items() if k != "signature"})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> "Manifest":
        try:
            payload = json.loads(text)
            manifest = cls(**payload)
        except (TypeError, ValueError):
            manifest = None
        if manifest is None or not manifest.signature or not isinstance(manifest.files, dict):
            raise SignatureError(f"{where}: {MANIFEST_FILE} is not a signed manifest")
        return manifest


def sign_manifest(kind: str, model: str, subject: str, run_id: str, files: Mapping[str, bytes], key: bytes,
                  model_file: str | None = None) -> Manifest:
    """The signed manifest of `files` (name -> bytes); `model_file` (default: the first name that
    starts with "model.") is the file gate verdicts are bound to."""
    names = sorted(files)
    chosen = model_file or next((n for n in names if n.startswith("model.")), names[0])
    unsigned = Manifest(kind, model, subject, run_id, chosen, {name: sha256_bytes(files[name]) for name in names})
    return dataclasses.replace(unsigned, signature=sign(unsigned.payload(), key))


def check_manifest(manifest: Manifest, key: bytes, *, model: str, run_id: str, where: str) -> None:
    """Raise SignatureError unless the manifest's signature verifies and it belongs to `model` and
    `run_id` (its files are not read: `verify_manifest` does that)."""
    if not signature_matches(manifest.payload(), key, manifest.signature):
        raise SignatureError(f"{where}: the manifest signature does not verify (the manifest was edited, or signed "
                             "with another key)")
    if (manifest.model, manifest.run_id) != (model, run_id):
        raise SignatureError(f"{where}: the manifest belongs to {manifest.model} run {manifest.run_id}, not {model} "
                             f"run {run_id}")
    if manifest.model_file not in manifest.files:
        raise SignatureError(f"{where}: the manifest does not name its model file {manifest.model_file}")


def verify_manifest(manifest: Manifest, files: Mapping[str, bytes], key: bytes, *, model: str, run_id: str,
                    where: str) -> None:
    """Raise SignatureError unless the manifest's signature verifies, it belongs to `model` and
    `run_id`, and every file it names is in `files` with its SHA-256. A load reads only the
    files the manifest names."""
    check_manifest(manifest, key, model=model, run_id=run_id, where=where)
    for name, expected in sorted(manifest.files.items()):
        if name not in files:
            raise SignatureError(f"{where}: {name} is missing (the signed manifest names it)")
        actual = sha256_bytes(files[name])
        if actual != expected:
            raise SignatureError(f"{where}: {name} does not match its signed manifest (SHA-256 {actual[:12]}… now, "
                                 f"{expected[:12]}… when signed): it was changed after signing")


CARD_FILE = "card.json"  # a signed card's entry in its manifest


def card_bytes(card: Mapping) -> bytes:
    """The signed form of a card kept as a stored value (a JSON object): all of it but its manifest."""
    return canonical_json({k: v for k, v in card.items() if k != "manifest"})


def signed_card(card: dict, kind: str, model: str, subject: str, run_id: str, files: Mapping[str, bytes], key: bytes,
                model_file: str) -> dict:
    """`card` with a signed manifest of itself and `files` under its key "manifest": for a model
    whose card is a stored value rather than a file beside it (the PPO policy, its ONNX export)."""
    manifest = sign_manifest(kind, model, subject, run_id, {**files, CARD_FILE: card_bytes(card)}, key, model_file)
    return {**card, "manifest": dataclasses.asdict(manifest)}


def verify_card(card: Mapping, files: Mapping[str, bytes], key: bytes, *, model: str, where: str) -> Manifest:
    """Raise SignatureError unless the card's manifest verifies and covers the card as it is and
    each of `files` (name -> bytes)."""
    raw = card.get("manifest")
    try:
        manifest = Manifest(**raw)
    except TypeError:
        raise SignatureError(f"{where}: its card carries no signed manifest (stored before cards were signed, or "
                             "the manifest was removed): materialize it again") from None
    verify_manifest(manifest, {**files, CARD_FILE: card_bytes(card)}, key, model=model, run_id=manifest.run_id,
                    where=where)
    return manifest
