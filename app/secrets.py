"""Encryption of stored secrets (provider API keys) with Fernet (AES-128-CBC + HMAC), and
the key files of the data folder.

The key comes from SECRETS_KEY; without it the server creates one in its data folder
(mode 0600) on first start so the embedded default works, and says so in the log. The
JWT signing key (JWT_SECRET, else jwt.key) is kept the same way.

A key file that exists must hold a well-formed key: an empty or cut-short one (a crash or
a full disk while it was written, a bad restore) is refused with a KeyFileError rather
than used, since using it would silently make stored provider keys unreadable (or sign
everyone out) while looking as if the server started fine.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from app.config import ConfigError, Settings, reveal

log = logging.getLogger("app.secrets")

KEY_FILE = "secret.key"
JWT_KEY_FILE = "jwt.key"

# What losing each file's key costs, told when refusing it (before someone removes it).
_WHAT_IS_LOST = {
    KEY_FILE: "stored provider keys will then be unreadable",
    JWT_KEY_FILE: "everyone will then have to log in again",
}

# What Fernet.generate_key() writes: 32 bytes in URL-safe base64, 43 characters and "=".
_FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{43}=")


class KeyFileError(ConfigError):
    """A key file or key setting the server must not start with."""


def _fernet_key(material: str) -> bytes:
    """Accept a Fernet key as is; derive one from any other passphrase (SECRETS_KEY only:
    a key file must hold a Fernet key)."""
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            return material.encode()
    except (ValueError, TypeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest())


def is_key(text: str) -> bool:
    """Whether `text` is a whole key as load_or_create_key_file writes it."""
    return _FERNET_KEY.fullmatch(text) is not None


def make_data_dir(data_dir: Path) -> None:
    """The data folder holds the keys and the SQLite database: made private (0700) when
    this creates it. An existing folder keeps the mode its owner gave it (a backup group
    may need to read it); the files in it are 0600 on their own."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"DATA_DIR {data_dir} is not a folder (a file is in the way)") from None
    except OSError as exc:  # a read-only or virtual file system, no permission
        raise ConfigError(f"DATA_DIR {data_dir} cannot be created: {exc.strerror or exc}") from None


def keep_private(path: str | Path) -> None:
    """A file of secrets (a key file, the SQLite database) that other accounts can read
    (made by an earlier version, or copied in with the umask's 0644) is tightened to its
    owner's bits, and said so: quietly readable by every local account is the worse
    surprise."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
            log.warning("%s was readable by other accounts (mode %04o): now %04o", path, mode, mode & 0o700)
    except FileNotFoundError:
        pass
    except OSError as error:  # e.g. owned by another account: keep going, but say so
        log.warning("%s is readable by other accounts and could not be made private: %s", path, error)


def read_key_file(path: Path) -> str | None:
    """The key in `path`; None when there is no such file. Anything else than one
    well-formed key (surrounding whitespace aside) is refused."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        text = ""  # binary garbage: refused below like any other malformed key
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error.strerror or error}") from None
    key = text.strip()
    if not is_key(key):
        consequence = _WHAT_IS_LOST.get(path.name, "what it protects will then be unreadable")
        raise KeyFileError(f"{path} is empty or not a valid key; restore it from backup or remove it "
                           f"to create a new one ({consequence})")
    return key


def load_or_create_key_file(data_dir: Path, name: str = KEY_FILE, setting: str = "SECRETS_KEY") -> str:
    """Read a key from data_dir/name, creating it (0600, never overwritten) when missing."""
    path = data_dir / name
    make_data_dir(data_dir)
    key = read_key_file(path)
    if key is not None:
        keep_private(path)
        return key
    key = Fernet.generate_key().decode()
    if not _publish(path, key):  # another process (a worker starting too) made it first
        return load_or_create_key_file(data_dir, name, setting)
    log.warning("No %s set: created a new key at %s (mode 0600); back it up", setting, path)
    return key


def _publish(path: Path, content: str) -> bool:
    """Put `content` at `path` all at once, or not at all: it is written to a temporary
    file in the same folder (0600, flushed to disk), which is then linked into place. A
    reader never sees a half-written key, a crash leaves no empty one, and a file already
    there is never replaced (False then)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if not _link_new(temporary, path):
            return False
        _fsync_dir(path.parent)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _link_new(source: Path, target: Path) -> bool:
    """A hard link fails when the target exists, which a rename would overwrite."""
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    except OSError:
        # A file system without hard links: rename, after a check that leaves a tiny
        # window in which a key made at the same moment could be replaced.
        if target.exists():
            return False
        os.replace(source, target)
    return True


def _fsync_dir(folder: Path) -> None:
    """Make the new directory entry durable too (where directories can be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def key_material(given: str | None, data_dir: Path, name: str, setting: str) -> str:
    """The key `setting` gives (any non-blank text, as always), else the key file's."""
    if given is None:
        return load_or_create_key_file(data_dir, name, setting)
    if not given.strip():
        raise KeyFileError(f"{setting} is set but blank; set it to the key, or unset it to use {data_dir / name}")
    return given


def load_keys(settings: Settings) -> tuple[str, str]:
    """The secrets key and the JWT signing key, key files created where needed."""
    return (key_material(reveal(settings.secrets_key), settings.data_dir, KEY_FILE, "SECRETS_KEY"),
            key_material(reveal(settings.jwt_secret), settings.data_dir, JWT_KEY_FILE, "JWT_SECRET"))


def check_keys(settings: Settings) -> None:
    """Refuse what load_keys would refuse, without creating any key file (for `migrate`,
    which may run where the keys are not kept)."""
    for given, name, setting in ((reveal(settings.secrets_key), KEY_FILE, "SECRETS_KEY"),
                                 (reveal(settings.jwt_secret), JWT_KEY_FILE, "JWT_SECRET")):
        if given is None:
            read_key_file(settings.data_dir / name)
        else:
            key_material(given, settings.data_dir, name, setting)


class SecretBox:
    def __init__(self, key_material: str):
        self._fernet = Fernet(_fernet_key(key_material))

    @classmethod
    def from_settings(cls, secrets_key: str | None, data_dir: Path) -> SecretBox:
        return cls(key_material(secrets_key, data_dir, KEY_FILE, "SECRETS_KEY"))

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
