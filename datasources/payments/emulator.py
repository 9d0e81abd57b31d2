"""Run localstripe (the local Stripe emulator) with a store file of our own choosing.

localstripe's `Store` pickles itself to the fixed `/tmp/localstripe.pickle` on every write
and reloads it at start, so every instance on a machine would share (and clobber) one
file. This module is both the child process (`python -m datasources.payments.emulator
--store PATH`), which redirects the store and closes a few API gaps (see
`localstripe_patches` and, for subscriptions billed per seat, `localstripe_subscriptions`),
and the parent-side `Emulator` handle that spawns it on a free
loopback port and stops it again.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

READY_PREFIX = "listening "
# The key the gateway sends the local emulator: localstripe accepts any, the SDK insists on one.
EMULATOR_API_KEY = "sk_test_local_emulator"


# --- child side -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="localstripe with a private store file")
    parser.add_argument("--store", required=True, type=Path, help="pickle file for the store")
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: any free one)")
    parser.add_argument(
        "--exit-with-stdin", action="store_true",
        help="shut down when stdin reaches end-of-file (the parent holds the other end)",
    )
    args = parser.parse_args(argv)
    store_path: Path = args.store.resolve()
    store_path.parent.mkdir(parents=True, exist_ok=True)

    # Imported here, not at module top: the parent side must not pay for (or depend on)
    # localstripe, and the patches must land before localstripe.server is imported.
    from datasources.payments import localstripe_patches, localstripe_subscriptions

    localstripe_patches.redirect_store(store_path)
    localstripe_patches.close_api_gaps()
    localstripe_subscriptions.close_subscription_gaps()
    from aiohttp import web
    from localstripe.resources import store
    from localstripe.server import app

    localstripe_subscriptions.close_subscription_gaps(app.router)

    store.try_load_from_disk()

    # IPv4 loopback only: localstripe's own start() binds '::' on a fixed port, which
    # exposes it to the network and collides between instances.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A restart on the port of an instance just stopped must not wait for its connections'
    # TIME_WAIT (on Linux this never lets two listeners share a port).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    # Listen before announcing, so a client connecting right away queues instead of
    # being refused while aiohttp is still starting.
    sock.listen(128)
    host, port = sock.getsockname()
    print(f"{READY_PREFIX}{host}:{port}", flush=True)
    # Nothing else may write to the parent's pipe (it stops reading after this line and
    # a full pipe would block us): send any later stdout output to stderr.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    if args.exit_with_stdin:
        app.on_startup.append(_exit_when_stdin_closes)
    web.run_app(app, sock=sock, print=None, handle_signals=True, access_log=None)


async def _exit_when_stdin_closes(app: object) -> None:
    # If the parent dies without calling stop() (SIGKILL, crash), its end of our stdin
    # pipe closes: take that as the signal to go, so no orphan keeps the port and store.
    loop = asyncio.get_running_loop()

    def on_readable() -> None:
        if not os.read(0, 4096):
            loop.remove_reader(0)
            os.kill(os.getpid(), signal.SIGTERM)  # the same graceful path as stop()

    loop.add_reader(0, on_readable)


# --- parent side ------------------------------------------------------------------

_REPO_ROOT = Path(__file__).resolve().parents[2]


class Emulator:
    """A running localstripe child process; `api_base` is its URL.

    One store has one emulator: a second process on the same file would overwrite the first
    one's writes. So whoever starts one for others to share (`serve`) announces its address
    next to the store, and `running_for` finds it (`seed` while a `serve` runs).
    """

    def __init__(self, process: subprocess.Popen[bytes], api_base: str, store_path: Path) -> None:
        self.process = process
        self.api_base = api_base
        self.store_path = store_path
        self._announced = False

    @staticmethod
    def address_file(store_path: Path) -> Path:
        return Path(store_path).resolve().with_suffix(".address")

    @classmethod
    def running_for(cls, store_path: Path) -> str | None:
        """The address of the emulator announced for this store, if it still runs and answers."""
        try:
            pid, api_base = cls.address_file(store_path).read_text().split()
            os.kill(int(pid), 0)
            host, port = api_base.removeprefix("http://").rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=2).close()
        except (OSError, ValueError):
            return None
        return api_base

    def announce(self) -> None:
        """Tells later processes using this store where this emulator answers (until it stops)."""
        path = self.address_file(self.store_path)
        path.write_text(f"{self.pid} {self.api_base}\n")
        self._announced = True

    @property
    def port(self) -> int:
        return int(self.api_base.rsplit(":", 1)[1])

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(cls, store_path: Path, timeout: float = 15, port: int = 0) -> Emulator:
        """Start one on `port` (0: any free loopback port), with the store at `store_path`."""
        store_path = Path(store_path).resolve()
        env = dict(os.environ)
        # The child imports this package by module name: make that work whatever the cwd.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        # stderr goes to an unnamed temp file, not a pipe: nobody drains it while the
        # emulator runs, and we still want its last words if it fails to start.
        errlog = tempfile.TemporaryFile()
        process = subprocess.Popen(
            [sys.executable, "-m", "datasources.payments.emulator", "--store", str(store_path),
             "--port", str(port), "--exit-with-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
            env=env,
            cwd=str(_REPO_ROOT),
        )
        try:
            line = _read_line(process, timeout)
            if not line.startswith(READY_PREFIX):
                raise RuntimeError(f"unexpected first line {line!r}")
            address = line[len(READY_PREFIX):].strip()
        except Exception as exc:
            _terminate(process)
            errlog.seek(0)
            tail = errlog.read()[-2000:].decode(errors="replace").strip()
            errlog.close()
            raise RuntimeError(
                f"payment emulator did not start: {exc}" + (f"\n{tail}" if tail else "")
            ) from exc
        errlog.close()  # the child keeps its own descriptor
        assert process.stdout is not None
        process.stdout.close()
        return cls(process, f"http://{address}", store_path)

    def stop(self) -> None:
        _terminate(self.process)
        if self._announced:
            self.address_file(self.store_path).unlink(missing_ok=True)
            self._announced = False

    def restart(self, timeout: float = 15) -> None:
        """Stop (if running) and start again on the same port with the same store, as a
        provider comes back after an outage: clients keep their address."""
        announced = self._announced
        self.stop()
        again = Emulator.start(self.store_path, timeout=timeout, port=self.port)
        self.process = again.process
        if announced:
            self.announce()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """Read the child's first stdout line, giving up after `timeout` seconds."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"no 'listening' line within {timeout:g} s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"process exited with code {process.wait()}")
        buf += chunk
    return buf.split(b"\n", 1)[0].decode()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s; always reaps, so it is safe to call twice."""
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None and not pipe.closed:
            pipe.close()


if __name__ == "__main__":
    main()
