"""`serve --workers N`: several processes on one port behave as one gateway."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import service_directory
from tests.test_serve import VIEWER, Served, clean_env, command, free_port, gone, graphql, login, stop


def workers_of(served: Served) -> list[psutil.Process]:
    """The live worker processes (not multiprocessing's resource tracker, not a dead one)."""
    found = []
    for child in psutil.Process(served.process.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and any("spawn_main" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def start_workers(data_dir: Path, log: Path, count: int) -> Served:
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen([*command(), "serve", "--port", str(port), "--data-dir", str(data_dir),
                                    "--workers", str(count)], stdout=out, stderr=subprocess.STDOUT, env=clean_env())
    served = Served(process, f"http://127.0.0.1:{port}", data_dir, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}:\n{served.output()}")
        if len(workers_of(served)) == count:
            try:
                if httpx.get(f"{served.url}/readyz", timeout=1).status_code == 200:
                    return served
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"serve --workers did not come up in 120 s:\n{served.output()}")


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with service_directory("workers") as root:
        served = start_workers(root / "data", root / "serve.log", 2)
        yield served
        if served.process.poll() is None:
            stop(served)


def test_two_workers_answer_on_one_port_with_shared_sessions(served):
    assert len({p.pid for p in workers_of(served)}) == 2
    token = login(served, "admin@northwind.example")
    # New connections each time: the kernel hands them to either worker, and the session
    # signed in on one is known to the other (it is a row in PostgreSQL).
    for _ in range(12):
        body = graphql(served, VIEWER, token=token)
        assert body["data"]["viewer"]["organization"]["name"] == "Northwind Studio"


def test_a_worker_that_dies_is_replaced_and_the_port_keeps_answering(served):
    token = login(served, "admin@northwind.example")
    victim = workers_of(served)[0]
    victim.kill()
    assert gone(victim.pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = graphql(served, VIEWER, token=token)  # the other worker answers meanwhile
        assert body["data"]["viewer"]["organization"]["name"] == "Northwind Studio"
        now = {p.pid for p in workers_of(served)}
        if len(now) == 2 and victim.pid not in now:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"no replacement worker:\n{served.output()}")
    assert "starting another" in served.output()


def test_sigterm_stops_every_worker_then_the_embedded_services(served):
    pids = [p.pid for p in served.children()]
    assert stop(served) == 0
    assert all(gone(pid) for pid in pids), served.output()
    assert "stopping 2 workers" in served.output()
    assert "stopped serving; stopping embedded services" in served.output()


def test_workers_must_be_a_positive_number(tmp_path):
    result = subprocess.run([*command(), "serve", "--workers", "0", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, env=clean_env(), timeout=60)
    assert result.returncode == 2
    assert "--workers" in result.stderr and "at least 1" in result.stderr
