"""Starting the real node processes (manage.py commands, runindexer, daphne) in a temp data dir."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from node_base.datadir import DATA_DIR_MODE, PRIVATE_FILE_MODE

ROOT = Path(__file__).resolve().parent.parent


def node_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a node process with its own data dir on the embedded defaults."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="proget_web.settings",
        PROGET_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(
    data_dir: Path, *args: str, check: bool = True, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess:
    """Run `manage.py ARGS` to completion and return the result (text output)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=node_env(data_dir, **env), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=check,
    )


# The embedded database file of a node (proget_web/settings.py), and a migrated copy made once per test process.
DATABASE_FILE = "proget.sqlite3"
_migrated: Path | None = None


def migrate(data_dir: Path) -> None:
    """Give the SQLite node at `data_dir` a freshly migrated database: migrated once per test run, then copied."""
    global _migrated
    if _migrated is None:
        template = Path(tempfile.mkdtemp(prefix="proget-migrated-"))
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        manage(template, "migrate", "--no-input")
        _migrated = template
    data_dir.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
    shutil.copyfile(_migrated / DATABASE_FILE, data_dir / DATABASE_FILE)
    os.chmod(data_dir / DATABASE_FILE, PRIVATE_FILE_MODE)  # a node refuses a database others can read


def spawn(data_dir: Path, *args: str, log: Path, **env: str) -> subprocess.Popen:
    """Start `manage.py ARGS` in the background, output to `log`."""
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=node_env(data_dir, **env), cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
    )


def wait_for(predicate: Callable[[], bool], *, timeout: float = 15, what: str = "condition") -> None:
    """Poll `predicate` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stop(process: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
    """Send `sig` and wait for the process to exit; SIGKILL it if it does not."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            command = " ".join(str(arg) for arg in process.args[1:4])  # e.g. "manage.py runindexer"
            raise AssertionError(f"process {process.pid} ({command}) ignored signal {sig} for {timeout} s") from None
    return process.returncode


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host`."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def shell(data_dir: Path, code: str) -> str:
    """Run Python `code` in a Django shell of the node at `data_dir`; return its stripped stdout."""
    return manage(data_dir, "shell", "--no-imports", "-c", code).stdout.strip()


class ServiceProcess:
    """A real `runindexer` on `data_dir`, started, killed and restarted by the test."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.env = env
        self.log = data_dir / "service.log"
        self.process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.data_dir / "run" / "messenger.sock"

    def start(self, *, ready: Callable[[], bool] | None = None) -> ServiceProcess:
        """Start the service and wait until `ready()` (default: its Unix socket accepts connections)."""
        self.process = spawn(self.data_dir, "runindexer", log=self.log, **self.env)
        wait_for(lambda: self.process.poll() is not None or (ready or self._socket_accepts)(),
                 what="the service to listen")
        assert self.process.poll() is None, self.log.read_text()
        return self

    def _socket_accepts(self) -> bool:
        with socket.socket(socket.AF_UNIX) as probe:
            return probe.connect_ex(str(self.socket)) == 0

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        return stop(self.process, sig=sig)

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()


# The web server as the Procfile starts it (daphne, guarded: proget_web/serve.py); it takes daphne's arguments.
WEB_SERVER = (sys.executable, "-m", "proget_web.serve")


def start_daphne(
    data_dir: Path, *, log: Path, server: Sequence[str] = WEB_SERVER, **env: str,
) -> tuple[subprocess.Popen, int]:
    """Start the web server (`server`, default the Procfile's) for the node at `data_dir` on a free loopback port
    and wait until it accepts; (process, port)."""
    port = free_port()
    with log.open("ab") as output:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [*server, "-b", "127.0.0.1", "-p", str(port), "proget_web.asgi:application"],
            env=node_env(data_dir, **env), cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
        )

    def accepts() -> bool:
        assert process.poll() is None, log.read_text()
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(accepts, what="daphne to listen")
    except BaseException:
        stop(process)
        raise
    return process, port
