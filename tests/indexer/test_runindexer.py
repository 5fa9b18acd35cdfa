"""`runindexer` serves the messenger and `messenger ping` talks to it: real processes, real sockets."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.processes import free_port, manage, migrate, shell, spawn, stop, wait_for

pytestmark = pytest.mark.slow

SOCKET = Path("run") / "messenger.sock"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    migrate(tmp_path)
    return tmp_path


def start_service(data_dir: Path, ready: callable) -> object:
    process = spawn(data_dir, "runindexer", log=data_dir / "service.log")
    try:
        wait_for(lambda: ready() or process.poll() is not None, what="the service to listen")
    except AssertionError:
        stop(process)
        raise
    assert process.poll() is None, (data_dir / "service.log").read_text()
    return process


def ping(data_dir: Path, *extra: str):
    return manage(data_dir, "messenger", "ping", "--timeout", "3", *extra, check=False)


def test_ping_over_unix_socket_then_clean_shutdown(data_dir: Path) -> None:
    sock = data_dir / SOCKET
    service = start_service(data_dir, sock.exists)
    try:
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        assert oct(sock.parent.stat().st_mode & 0o777) == "0o700"
        result = ping(data_dir)
        assert result.returncode == 0, result.stderr
        assert "pong from" in result.stdout and " ms" in result.stdout
        fingerprint = shell(data_dir, "from indexer.messenger_config import messenger_settings as m; "
                                      "print(m().fingerprint)")
        assert fingerprint in result.stdout
    finally:
        assert stop(service) == 0
    assert not sock.exists()


def test_ping_over_tcp(data_dir: Path) -> None:
    port = free_port()
    manage(data_dir, "settings", "set", "Service.MessengerEndpoint", f"tcp://127.0.0.1:{port}")

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    service = start_service(data_dir, listening)
    try:
        result = ping(data_dir)
        assert result.returncode == 0, result.stderr
        assert "pong from" in result.stdout
    finally:
        stop(service)


def test_ping_without_service_fails_with_one_clear_line(data_dir: Path) -> None:
    result = ping(data_dir)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "service not reachable: not running" in lines[0], result.stderr


def test_ping_refused_over_tcp(data_dir: Path) -> None:
    manage(data_dir, "settings", "set", "Service.MessengerEndpoint", f"tcp://127.0.0.1:{free_port()}")
    result = ping(data_dir)
    assert result.returncode != 0
    assert "service not reachable: connection refused" in result.stderr.strip()


def test_key_mismatch_is_named(data_dir: Path) -> None:
    sock = data_dir / SOCKET
    service = start_service(data_dir, sock.exists)
    try:
        # Written behind the settings store's back (no version bump, no nudge): the service keeps the
        # key it started with, while this client now reads another one.
        shell(data_dir, "from settings_store.models import SettingValue as V;"
                        f"V.objects.filter(name='Service.MessengerKey').update(value='{'A' * 43}=')")
        result = ping(data_dir)
        assert result.returncode != 0
        assert "key mismatch" in result.stderr
    finally:
        stop(service)


def test_malformed_key_stops_the_messenger_with_one_clear_error(data_dir: Path) -> None:
    shell(data_dir, "from settings_store.models import SettingValue as V;"
          "V.objects.update_or_create(name='Service.MessengerKey', defaults={'value': 'bad!key'})")
    service = spawn(data_dir, "runindexer", log=data_dir / "service.log")
    assert service.wait(timeout=30) != 0
    log = (data_dir / "service.log").read_text()
    assert "Service.MessengerKey must be base64 of 32 bytes" in log
    assert "Traceback" not in log
    result = ping(data_dir)
    assert result.returncode != 0 and "Service.MessengerKey must be base64 of 32 bytes" in result.stderr


def test_stale_socket_from_a_crashed_service_is_replaced(data_dir: Path) -> None:
    sock = data_dir / SOCKET
    sock.parent.mkdir(mode=0o700, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()  # the file stays behind, as after a SIGKILL
    service = start_service(data_dir, lambda: ping(data_dir).returncode == 0)
    stop(service)
