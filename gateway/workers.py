"""`serve --workers N`: N gateway processes answering on one listening socket, supervised.

The parent does what happens once: it starts the embedded services when none are
configured, migrates, seeds and binds the socket. Then it starts N workers, each a fresh
interpreter ("spawn": nothing inherited from the parent's event loop) that accepts on the
same socket, so the kernel spreads connections over them. The workers share nothing but
PostgreSQL and, with REDIS_URL, Redis: sessions, idempotency records, the outbox and the
audit log are rows; rate-limit buckets are in Redis (without it each process counts alone).

Each worker's metrics go to files in a directory made for this run (gateway/metrics.py), so
any worker answers a scrape with the sum over all of them; when a worker exits its gauges
are dropped from that sum and its counters stay in it.

A worker that exits is replaced. SIGTERM or SIGINT stops the workers, each finishing its
requests in flight, and only then the embedded services they were using.
"""

from __future__ import annotations

import asyncio
import gc
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.process import BaseProcess

import uvicorn
from prometheus_client import multiprocess

from gateway import logs
from gateway.app import create_app
from gateway.heads import head_limited
from gateway.metrics import MULTIPROCESS_DIR_ENV, listener_app
from gateway.settings import Settings

log = logging.getLogger("gateway.workers")
SHUTDOWN_GRACE_SECONDS = 10
GC_YOUNG_THRESHOLD = 10_000  # allocations between collections of the youngest generation (default 700)
# A worker that dies sooner than this after starting is restarted only after this long, so a
# worker that cannot start does not spin.
MIN_WORKER_LIFETIME_SECONDS = 2.0


class Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM after its shutdown, which would kill the process
    before what it started has stopped; the caller installs its own handlers instead."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


async def serve_app(settings: Settings, sock: socket.socket, metrics_sock: socket.socket | None = None) -> None:
    """One process's server until SIGTERM or SIGINT, requests in flight answered first; and,
    on `metrics_sock` (METRICS_PORT), the listener that serves `/metrics` alone."""
    # uvicorn would trust X-Forwarded-For from loopback by default: only the named proxies do.
    proxies = list(settings.forwarded_allow_ips)
    app = create_app(settings)
    # The run's logging configuration, not uvicorn's own text one; the request log stands
    # for uvicorn's access log (gateway/logs.py).
    # permessage-deflate declined: every client offers it, and each connection that takes it
    # holds a compressor and a decompressor (about 40 KB, measured: 108 MB per 1,000 idle
    # subscriptions with it, 66 without) to shrink messages of a few hundred bytes, which a
    # proxy or TLS in front compresses anyway if at all. Clients go on without it.
    server = Server(uvicorn.Config(app, http=head_limited(settings.max_header_bytes), lifespan="on", log_level="info",
                                   ws_per_message_deflate=False,
                                   log_config=logs.config(settings.request_log_format), access_log=False,
                                   timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
                                   proxy_headers=bool(proxies), forwarded_allow_ips=proxies))
    running = [server.serve(sockets=[sock])]
    servers = [server]
    if metrics_sock is not None:
        servers.append(Server(uvicorn.Config(listener_app(app), http=head_limited(settings.max_header_bytes),
                                             lifespan="off", log_config=None, access_log=False,
                                             proxy_headers=False)))
        running.append(servers[-1].serve(sockets=[metrics_sock]))
    _tune_garbage_collection()
    def stop(sig: signal.Signals) -> None:
        for each in servers:
            each.handle_exit(sig, None)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    await asyncio.gather(*running)


def _tune_garbage_collection() -> None:
    """What the process made to start (schema, modules: about 130,000 objects) lives as long as
    it does; frozen, full collections stop walking it (one paused a request for ~90 ms). A
    dashboard allocates tens of thousands of objects: collecting the youngest generation every
    10,000 allocations instead of 700 took its CPU per request from 15.4 to 10.6 ms in process
    (`bench/overhead.py`-style measurement, 300 requests)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _worker_main(settings: Settings, sock: socket.socket, metrics_sock: socket.socket | None) -> None:
    logs.configure(settings.request_log_format)
    try:
        asyncio.run(serve_app(settings, sock, metrics_sock))
    except Exception:  # noqa: BLE001 - logged in the run's format; multiprocessing would print it as text
        log.exception("worker pid %d failed", os.getpid())
        sys.exit(1)


async def supervise(settings: Settings, sock: socket.socket, count: int,
                    metrics_sock: socket.socket | None = None) -> None:
    """Runs `count` workers until SIGTERM or SIGINT, replacing any that exits."""
    if not settings.redis_url:
        log.warning("%d workers without REDIS_URL: each process keeps its own rate-limit buckets", count)
    spawn = multiprocessing.get_context("spawn")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)

    def start() -> tuple[BaseProcess, float]:
        process = spawn.Process(target=_worker_main, args=(settings, sock, metrics_sock), name="account-gateway-worker")
        process.start()
        log.info("started worker pid %d", process.pid)
        return process, time.monotonic()

    with _shared_metrics_directory() as metrics_dir:
        workers = [start() for _ in range(count)]
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=0.5)
            for slot, (process, started) in enumerate(workers):
                if process.is_alive() or stopping.is_set():
                    continue
                log.warning("worker pid %d exited with %s; starting another", process.pid, process.exitcode)
                multiprocess.mark_process_dead(process.pid, metrics_dir)
                if time.monotonic() - started < MIN_WORKER_LIFETIME_SECONDS:
                    await asyncio.sleep(MIN_WORKER_LIFETIME_SECONDS)
                workers[slot] = start()
        log.info("stopping %d workers", count)
        for process, _ in workers:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        await asyncio.gather(*(asyncio.to_thread(_reap, process) for process, _ in workers))


@contextlib.contextmanager
def _shared_metrics_directory() -> Iterator[str]:
    """The workers' metric files, for as long as they run. Always a new directory, never one
    from the environment: files left by an earlier run would be added into this run's sums.
    Spawned workers inherit the environment as it is when they start, which is how they
    learn the directory before prometheus_client is imported."""
    path = tempfile.mkdtemp(prefix="account-gateway-metrics-")
    previous = os.environ.get(MULTIPROCESS_DIR_ENV)
    os.environ[MULTIPROCESS_DIR_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_DIR_ENV, None)
        else:
            os.environ[MULTIPROCESS_DIR_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def _reap(process: BaseProcess) -> None:
    process.join(SHUTDOWN_GRACE_SECONDS + 5)
    if process.is_alive():
        log.warning("worker pid %d did not stop in time; killing it", process.pid)
        process.kill()
        process.join(5)
