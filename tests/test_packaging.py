"""The wheel works without a source checkout: `pip wheel .`, installed in a fresh venv with
the locked dependencies, serves the dashboard, Swagger UI and the API from any folder.

Installing ~75 packages into a new venv would take minutes from the network; uv installs
them from its cache (filled by `make install`, which installs with uv from the same lock
files), so this test takes about 15-25 s, most of it `pip wheel` and the server's start."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx

from tests.live_server import ROOT, free_port, terminate

# Not part of the package; left out of the copy the wheel is built from, so neither a
# stale build/ nor a data folder can change what it holds.
NOT_COPIED = {".git", ".venv", "build", "data", "docs", "tests", "bench", "examples", "scripts", "requirements"}
UV = Path(sys.executable).with_name("uv")  # the Makefile installs it into the venv
START_SECONDS = 30  # a cold start on a busy 2-core machine: imports and migrations


def _copy_ignore(folder: str, names: list[str]) -> set[str]:
    top = Path(folder) == ROOT
    return {n for n in names if n == "__pycache__" or (top and (n in NOT_COPIED or n.endswith(".egg-info")))}


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_the_installed_wheel_migrates_and_serves_from_any_folder(tmp_path):
    timings: dict[str, float] = {}
    started = time.monotonic()

    def lap(name: str) -> None:
        nonlocal started
        timings[name] = round(time.monotonic() - started, 1)
        started = time.monotonic()

    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=_copy_ignore)
    _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--quiet", "-w", tmp_path / "dist"])
    (wheel,) = (tmp_path / "dist").glob("agent_runtime_server-*.whl")
    lap("pip wheel")

    # What the wheel holds: the package, with the repository's migrations/, static/ and
    # hypercorn.toml inside it, and nothing at the top but `app` and its metadata.
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {n.split("/")[0] for n in names} == {"app", f"{wheel.name.split('-py3')[0]}.dist-info"}, sorted(names)
    assert {f"app/static/{f}" for f in _files(src / "static")} <= names  # the vendored Swagger UI too
    assert {f"app/migrations/{f}" for f in _files(src / "migrations")} <= names
    assert "app/hypercorn.toml" in names
    assert {f"app/{f}" for f in _files(src / "app") if f.endswith(".py")} <= names  # every subpackage

    # A fresh venv: the locked runtime dependencies (hash-checked), then the wheel. Its own
    # requirements must then be met already: offline, it could not fetch anything missing.
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    _run([UV, "venv", "--quiet", "--python", sys.executable, venv])
    _run([UV, "pip", "install", "--quiet", "--python", python, "--require-hashes", "-r", ROOT / "requirements" / "base.txt"])
    _run([UV, "pip", "install", "--quiet", "--python", python, "--offline", wheel])
    lap("venv and install")

    # From a folder that is not the checkout, with nothing of the checkout on the path.
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "DATA_DIR": str(tmp_path / "data"), "BIND": f"127.0.0.1:{port}", "LOG_LEVEL": "WARNING"}
    where = _run([python, "-c", "import app, app.migrations, importlib.util; "
                  "print(app.__file__); print(app.migrations.__file__); print(importlib.util.find_spec('migrations'))"],
                 cwd=cwd, env=env).stdout.splitlines()
    assert all(Path(f).is_relative_to(venv) for f in where[:2]), where
    assert where[2] == "None"  # no top-level `migrations` package

    # PostgreSQL's driver is an extra this venv does not have: one line says how to get it.
    no_driver = subprocess.run([python, "-m", "app", "migrate"], cwd=cwd, capture_output=True, text=True, timeout=60,
                               env={**env, "DATABASE_URL": "postgres://postgres@127.0.0.1:9/none"})
    assert no_driver.returncode == 1
    assert "pip install '.[postgres]'" in no_driver.stderr and "Traceback" not in no_driver.stderr, no_driver.stderr

    migrated = _run([python, "-m", "app", "migrate"], cwd=cwd, env=env)
    assert "migrations applied" in migrated.stdout
    lap("migrate")

    server = subprocess.Popen([python, "-m", "app", "serve"], cwd=cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + START_SECONDS
            while True:
                assert server.poll() is None, f"serve exited {server.returncode}:\n{server.stderr.read()}"
                try:
                    health = client.get("/health")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, f"not listening after {START_SECONDS} s"
                    time.sleep(0.1)
            lap("serve until /health")
            assert health.status_code == 200, health.text
            assert health.json()["status"] == "ok"

            page = client.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert page.content == (src / "static" / "index.html").read_bytes()
            for name in ("app.js", "style.css", "favicon.svg"):
                asset = client.get(f"/static/{name}")
                assert asset.status_code == 200, name
                assert asset.content == (src / "static" / name).read_bytes(), name

            assert client.get("/swagger-ui/").status_code == 200
            for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
                asset = client.get(f"/swagger-ui/assets/{name}")
                assert asset.status_code == 200, name
                assert asset.content == (src / "static" / "vendor" / "swagger-ui" / name).read_bytes(), name
            assert client.get("/api-doc/openapi.json").status_code == 200
    finally:
        terminate(server)
    assert server.returncode == 0, server.stderr.read()
    assert (tmp_path / "data" / "runtime.sqlite3").exists()  # DATA_DIR, not the checkout's data/
    print(f"timings (s): {timings}")


def test_makemigrations_writes_into_the_checkouts_migrations_folder(tmp_path):
    """`make makemigrations` runs Tortoise's CLI at the top of the checkout (here a copy of
    it): a new migration lands in migrations/, the folder the wheel packages as
    app.migrations, and no app/migrations/ appears beside the code."""
    for name in ("app", "migrations"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    before = set(os.listdir(tmp_path / "migrations"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"DATA_DIR": str(tmp_path / "data")}
    _run([Path(sys.executable).with_name("tortoise"), "makemigrations", "--empty", "models"], cwd=tmp_path, env=env)
    # (the CLI imports the migrations it finds: where bytecode is written, __pycache__ appears)
    (created,) = set(os.listdir(tmp_path / "migrations")) - before - {"__pycache__"}
    assert created.endswith(".py")
    assert not (tmp_path / "app" / "migrations").exists()
