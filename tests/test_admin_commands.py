"""Admin commands run against the data directory of a running `serve`: they use its embedded
PostgreSQL and payment emulator, and leave both running for it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil

from tests.test_serve import VIEWER, clean_env, command, graphql, login, start, stop

EMULATOR = "datasources.payments.emulator"


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*command(), *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                          env=clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def emulators_on(store: Path) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"]
            and EMULATOR in " ".join(p.info["cmdline"]) and str(store) in " ".join(p.info["cmdline"])]


def test_admin_commands_leave_the_running_gateways_services_running(tmp_path):
    data_dir = tmp_path / "data"
    served = start(data_dir, tmp_path / "serve.log")
    try:
        postgres_pid = served.postgres_pid()
        [emulator] = emulators_on((data_dir / "localstripe.pickle").resolve())
        api_base = (data_dir / "localstripe.address").read_text().split()[1]
        commands = [
            ("service-token", "create", "--name", "ops-check", "--scopes", "accounts:read"),
            ("staff", "grant", "admin@globex.example", "SUPPORT"),
            ("staff", "list"),
            ("migrate",),
            ("seed",),
        ]
        outputs = {}
        for args in commands:
            outputs[args[:2]] = run(data_dir, *args)
            # The gateway still reaches its database: signing in reads the account and writes a session.
            body = graphql(served, VIEWER, token=login(served, "owner@northwind.example"))
            assert body["data"]["viewer"]["organization"]["name"] == "Northwind Studio", (args, body)
            assert served.postgres_pid() == postgres_pid
        assert "admin@globex.example  SUPPORT  Marco Bianchi" in outputs[("staff", "list")].stdout
        seeded = outputs[("seed",)]
        assert seeded.stdout.strip() == "demo data already present; provider side checked"
        assert f"using the local payment provider already running at {api_base}" in seeded.stderr
        assert emulators_on((data_dir / "localstripe.pickle").resolve()) == [emulator]  # never a second one
    finally:
        assert stop(served) == 0
    assert _exits(postgres_pid)
    assert not (data_dir / "localstripe.address").exists()


def _exits(pid: int, timeout: float = 15.0) -> bool:
    """Whether the process is gone (or a zombie) within `timeout`: a server told to stop on a
    loaded machine may take a few seconds to finish its shutdown checkpoint."""
    try:
        process = psutil.Process(pid)
        process.wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return process.status() == psutil.STATUS_ZOMBIE
    return True
