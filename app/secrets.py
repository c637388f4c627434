"""Encryption of stored secrets (provider API keys) with Fernet (AES-128-CBC + HMAC).

The key comes from SECRETS_KEY; without it the server creates one in its data folder
(mode 0600) on first start so the embedded default works, and says so in the log.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger("app.secrets")

KEY_FILE = "secret.key"


def _fernet_key(material: str) -> bytes:
    """Accept a Fernet key as is; derive one from any other passphrase."""
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            return material.encode()
    except (ValueError, TypeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest())


def load_or_create_key_file(data_dir: Path, name: str = KEY_FILE, setting: str = "SECRETS_KEY") -> str:
    """Read a key from data_dir/name, creating it (0600, never overwritten) when missing."""
    path = data_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = Fernet.generate_key().decode()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    log.warning("No %s set: created a new key at %s (mode 0600); back it up", setting, path)
    return key


class SecretBox:
    def __init__(self, key_material: str):
        self._fernet = Fernet(_fernet_key(key_material))

    @classmethod
    def from_settings(cls, secrets_key: str | None, data_dir: Path) -> SecretBox:
        return cls(secrets_key or load_or_create_key_file(data_dir))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("stored secret cannot be decrypted with the current SECRETS_KEY") from None


def mask_secret(secret: str) -> str:
    """A hint that identifies a key without revealing it: 'sk-...abcd'."""
    if len(secret) < 12:
        return "..." + secret[-2:] if len(secret) > 4 else "****"
    return f"{secret[:3]}...{secret[-4:]}"
