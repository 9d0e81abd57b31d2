"""`serve --workers N`: several processes on one port behave as one gateway."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import MULTIPROCESS_DIR_ENV
from gateway.settings import DEFAULT_OPERATIONS_DIR
from tests.conftest import service_directory
from tests.test_metrics import total
from tests.test_serve import VIEWER, Served, clean_env, command, free_port, gone, graphql, login, stop

COUNTED = "query CountedAcrossWorkers { viewer { customerNumber } }"


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


def start_workers(data_dir: Path, log: Path, count: int, env: dict[str, str] | None = None) -> Served:
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen([*command(), "serve", "--port", str(port), "--data-dir", str(data_dir),
                                    "--workers", str(count)], stdout=out, stderr=subprocess.STDOUT,
                                   env={**clean_env(), **(env or {})})
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
        # COUNTED registered beside the portal's operations: only registered names are labels.
        operations = root / "operations"
        shutil.copytree(DEFAULT_OPERATIONS_DIR, operations)
        (operations / "counted.graphql").write_text(COUNTED)
        served = start_workers(root / "data", root / "serve.log", 2, {"OPERATIONS_DIR": str(operations)})
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


def kill_a_worker(served: Served) -> int:
    victim = workers_of(served)[0]
    victim.kill()
    assert gone(victim.pid)
    return victim.pid


def replaced(served: Served, victim: int) -> bool:
    now = {p.pid for p in workers_of(served)}
    return len(now) == 2 and victim not in now


def scrape(served: Served) -> str:
    response = httpx.get(f"{served.url}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def counted_by(worker: psutil.Process) -> float:
    """COUNTED requests in one worker's own counter file, read beside the gateway."""
    path = Path(worker.environ()[MULTIPROCESS_DIR_ENV]) / f"counter_{worker.pid}.db"
    if not path.exists():  # the worker's app has not started yet
        return 0
    return sum(sample.value for family in MultiProcessCollector.merge([str(path)]) for sample in family.samples
               if sample.name == "gateway_requests_total" and sample.labels["operation"] == "CountedAcrossWorkers")


def test_one_scrape_sums_every_worker_and_keeps_a_dead_workers_counts(served):
    token = login(served, "admin@northwind.example")
    workers = workers_of(served)
    sent = 0
    # New connections until both workers have answered some: the kernel picks who accepts.
    while sent < 10 or not all(counted_by(worker) for worker in workers):
        assert sent < 200, [counted_by(worker) for worker in workers]
        assert "errors" not in graphql(served, COUNTED, token=token)
        sent += 1
    assert sum(counted_by(worker) for worker in workers) == sent
    # Each worker counted fewer than `sent`: a scrape that shows `sent` summed both, and
    # every scrape does, whichever worker it reached.
    scrapes = [scrape(served) for _ in range(6)]
    assert [total(text, "gateway_requests_total", operation="CountedAcrossWorkers") for text in scrapes] == [sent] * 6
    both_pools = total(scrapes[-1], "gateway_db_pool_max_size")
    assert both_pools > 0 and both_pools % 2 == 0

    victim = kill_a_worker(served)
    deadline = time.monotonic() + 60
    while True:
        done = replaced(served, victim)  # then the supervisor has already dropped the victim's gauges
        text = scrape(served)
        assert total(text, "gateway_requests_total", operation="CountedAcrossWorkers") == sent
        assert total(text, "gateway_db_pool_max_size") <= both_pools
        if done and total(text, "gateway_db_pool_max_size") == both_pools:  # the replacement reports too
            break
        assert time.monotonic() < deadline, f"no replacement worker in its figures:\n{served.output()}"
        time.sleep(0.2)
    live = {str(p.pid) for p in workers_of(served)}
    reporting = {sample.labels["pid"] for family in text_string_to_metric_families(text) for sample in family.samples
                 if sample.name == "process_resident_memory_bytes"}
    assert reporting == live


def test_a_worker_that_dies_is_replaced_and_the_port_keeps_answering(served):
    token = login(served, "admin@northwind.example")
    victim = kill_a_worker(served)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = graphql(served, VIEWER, token=token)  # the other worker answers meanwhile
        assert body["data"]["viewer"]["organization"]["name"] == "Northwind Studio"
        if replaced(served, victim):
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
