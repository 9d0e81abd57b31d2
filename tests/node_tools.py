"""npm packages for the tests that run node (client tooling, graphql-js's printer, the graphql-ws
client, the GraphQL-over-HTTP audit): installed once into a directory kept between runs."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


def installed(workdir: Path, package_json: str, purpose: str, *, files: dict[str, str] | None = None,
              ready: Callable[[Path], bool] = lambda _workdir: True, timeout: float = 600) -> Path:
    """`workdir` holding `package_json` with its dependencies installed (and `files` beside it).

    Skips, saying `purpose`, where node or npm is missing or the install fails (no registry).
    Installs into one directory wait for each other on a lock file: the suite's workers
    (pytest-xdist) may ask for the same tools at once, and npm does not guard a directory.
    """
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip(f"node and npm are needed {purpose}")
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name, text in (files or {}).items():
            if not (workdir / name).exists() or (workdir / name).read_text() != text:
                (workdir / name).write_text(text)
        package = workdir / "package.json"
        if package.exists() and package.read_text() == package_json and (workdir / "node_modules").exists() \
                and ready(workdir):
            return workdir
        package.write_text(package_json)
        try:
            done = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=workdir,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            package.unlink()
            pytest.skip(f"npm install in {workdir} took over {timeout:.0f} s (registry unreachable?)")
        if done.returncode != 0:
            package.unlink()
            pytest.skip(f"npm install in {workdir} failed (registry unreachable?): {done.stderr.strip()[:300]}")
    return workdir
