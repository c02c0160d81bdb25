"""Encryption of secrets at rest (Fernet: AES-128-CBC + HMAC) and hashing of access tokens."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

TOKEN_PREFIX = "sy_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(30)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_or_create_key(configured: str | None, data_dir: Path, *, create: bool = True) -> bytes:
    """The configured key, else ``DATA_DIR/secret.key`` (created 0600 on first use unless ``create`` is
    false: a build worker only reads it)."""
    if configured:
        return configured.encode()
    path = data_dir / "secret.key"
    if path.exists() or not create:
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()
