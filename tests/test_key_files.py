"""The data folder's key files (secret.key, jwt.key) and database: a broken key file is
refused with one line, never used; key files are written whole or not at all; the folder,
the keys and the SQLite file are private to the server's account."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.config import ConfigError, Settings
from app.main import create_app
from app.secrets import SecretBox, load_or_create_key_file
from tests.live_server import NOT_INHERITED, ROOT, free_port

VALID = Fernet.generate_key().decode()
BROKEN = {
    "empty": b"",  # a crash between creating the file and writing it
    "blank": b"\n",
    "truncated": VALID[:20].encode(),  # a full disk part way
    "garbage": b"not a key at all\n",
    "binary": b"\xff\xfe\x00\x01" * 11,
    "two keys": f"{VALID}\n{VALID}\n".encode(),
}
WHAT_IS_LOST = {"secret.key": "stored provider keys will then be unreadable",
                "jwt.key": "everyone will then have to log in again"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    """The usual umask, under which files made without an explicit mode end up 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def refusal(path: Path) -> str:
    return (f"{path} is empty or not a valid key; restore it from backup or remove it to create a new one "
            f"({WHAT_IS_LOST[path.name]})")


# --- refusing a broken key file -------------------------------------------------------

@pytest.mark.parametrize("name", ["secret.key", "jwt.key"])
@pytest.mark.parametrize("content", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_key_file_is_refused_and_left_alone(settings, name, content):
    path = settings.data_dir / name
    path.write_bytes(content)
    with pytest.raises(ConfigError) as refused:
        create_app(settings)
    assert str(refused.value) == refusal(path)
    assert path.read_bytes() == content  # kept for whoever restores it


def test_a_well_formed_key_file_is_used_as_is(settings):
    (settings.data_dir / "secret.key").write_text(VALID + "\n")  # a newline from an editor is fine
    token = SecretBox(VALID).encrypt("sk-provider-key")
    assert SecretBox.from_settings(None, settings.data_dir).decrypt(token) == "sk-provider-key"
    assert (settings.data_dir / "secret.key").read_text() == VALID + "\n"


@pytest.mark.parametrize("field", ["secrets_key", "jwt_secret"])
def test_a_blank_key_setting_is_refused(settings, field):
    with pytest.raises(ConfigError, match="blank"):
        create_app(settings.replace(**{field: "  "}))


def test_a_short_jwt_secret_is_refused(settings):
    """Reported: a short JWT_SECRET only made PyJWT print InsecureKeyLengthWarning to stderr."""
    with pytest.raises(ConfigError, match="JWT_SECRET is 9 bytes; HS256 needs at least 32"):
        create_app(settings.replace(jwt_secret="too-short"))


def test_secrets_key_from_the_environment_keeps_its_rules(tmp_path):
    """Any passphrase (a key is derived from it) or a Fernet key used as is, as before."""
    for material in ("correct horse battery staple", VALID):
        box = SecretBox.from_settings(material, tmp_path)
        assert box.decrypt(box.encrypt("secret")) == "secret"
    assert SecretBox.from_settings(VALID, tmp_path).decrypt(SecretBox(VALID).encrypt("x")) == "x"
    assert not (tmp_path / "secret.key").exists()


# --- writing key files ----------------------------------------------------------------

def test_key_files_and_the_data_folder_are_created_private(tmp_path, umask_022):
    data_dir = tmp_path / "fresh" / "data"
    key = load_or_create_key_file(data_dir)
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "secret.key") == 0o600
    assert (data_dir / "secret.key").read_text() == key and Fernet(key.encode())
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret.key"]  # no temporary file left
    assert load_or_create_key_file(data_dir) == key  # never replaced


class _FullDisk:
    """What os.fdopen returns when the disk is full: the write fails."""

    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def write(self, _text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_key_that_could_not_be_written_leaves_no_file(tmp_path, monkeypatch):
    """Else the next start would find an empty key file (and, before this was checked,
    use it: stored provider keys then undecryptable for good)."""
    monkeypatch.setattr(os, "fdopen", lambda fd, *args, **kwargs: _FullDisk(fd))
    with pytest.raises(OSError) as failed:
        load_or_create_key_file(tmp_path)
    assert failed.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert Fernet(load_or_create_key_file(tmp_path).encode())  # the next start makes a whole one


def test_processes_starting_together_agree_on_one_key(tmp_path):
    """Readers racing the writer never see a half-written key (threads stand in for the
    processes; each call opens and reads the file as a process would)."""
    start, keys = threading.Barrier(8), []

    def load() -> None:
        start.wait()
        keys.append(load_or_create_key_file(tmp_path))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and set(keys) == {(tmp_path / "secret.key").read_text()}


# --- the SQLite database file -----------------------------------------------------------

async def test_the_database_file_is_created_private(tmp_path, umask_022):
    data_dir = tmp_path / "data"
    app = create_app(Settings(data_dir=data_dir, log_level="WARNING"))  # SQLite in DATA_DIR, migrated at start
    async with app.test_app():
        database = data_dir / "runtime.sqlite3"
        assert database.is_file() and mode(database) == 0o600
        for companion in (data_dir / "runtime.sqlite3-wal", data_dir / "runtime.sqlite3-shm"):
            if companion.exists():
                assert mode(companion) == 0o600, companion
    assert mode(data_dir) == 0o700


async def test_an_existing_readable_database_is_made_private(settings, caplog, monkeypatch):
    """Made by an earlier version with the umask's mode: tightened, and said so."""
    monkeypatch.setattr("app.main.configure_logging", lambda level: None)  # it would drop caplog's handler
    database = settings.data_dir / "db.sqlite3"
    database.chmod(0o644)
    async with create_app(settings).test_app():
        assert mode(database) == 0o600
    assert any(str(database) in r.getMessage() and r.levelname == "WARNING" for r in caplog.records), caplog.text


async def test_an_existing_readable_key_file_is_made_private(tmp_path, caplog, monkeypatch):
    """Reported: a secret.key or jwt.key readable by every account (0644: copied in, or
    restored from a backup) was used without a word, where the database file is tightened."""
    monkeypatch.setattr("app.main.configure_logging", lambda level: None)  # it would drop caplog's handler
    data_dir = tmp_path / "data"
    async with create_app(Settings(data_dir=data_dir, log_level="WARNING")).test_app():
        pass  # the keys are made (0600)
    for name in ("secret.key", "jwt.key"):
        (data_dir / name).chmod(0o644)
    async with create_app(Settings(data_dir=data_dir, log_level="WARNING")).test_app():
        pass
    for name in ("secret.key", "jwt.key"):
        assert mode(data_dir / name) == 0o600
        assert any(name in r.getMessage() and "readable by other accounts" in r.getMessage() for r in caplog.records)


# --- how `python -m app` refuses ---------------------------------------------------------

def run_app(command: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
    env = {**inherited, "DATA_DIR": str(data_dir), "BIND": f"127.0.0.1:{free_port()}", "LOG_LEVEL": "WARNING", **env}
    try:
        return subprocess.run([sys.executable, "-m", "app", command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as running:
        pytest.fail(f"`python -m app {command}` did not refuse to start:\n{running.stderr}")


# WORKERS > 1 needs temporal mode's settings; nothing listens there: the refusal comes first.
WORKERS = {"WORKERS": "2", "RUNNER_MODE": "temporal", "DATABASE_URL": "postgres://127.0.0.1:9/none",
           "REDIS_URL": "redis://127.0.0.1:9/0"}


@pytest.mark.parametrize("command, broken, env", [
    ("serve", "secret.key", {}),
    ("serve", "jwt.key", {}),
    ("migrate", "secret.key", {}),
    ("serve", "secret.key", WORKERS),
], ids=["serve-secret", "serve-jwt", "migrate", "serve-workers"])
def test_python_m_app_refuses_a_broken_key_file_in_one_line(tmp_path, command, broken, env):
    for name in WHAT_IS_LOST:  # the other key is fine, so the refusal is all there is to say
        (tmp_path / name).write_text(VALID)
    (tmp_path / broken).write_text("")
    done = run_app(command, tmp_path, **env)
    assert done.returncode != 0
    assert done.stderr.splitlines() == [f"error: {refusal(tmp_path / broken)}"], done.stderr
    assert not (tmp_path / "runtime.sqlite3").exists()  # refused before the database was touched
