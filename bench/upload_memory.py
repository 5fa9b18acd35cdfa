"""Upload memory: what a 100 MB upload costs the web process, and how fast an upload that will be refused is.

Starts, on a temp data dir with an admin and the feed `main`, ours (`python -m proget_web.serve`, as the
Procfile does) and the reference (stock `daphne`, same arguments), one after the other, and measures on each:

- peak RSS growth of the web process during an authenticated 100 MB (10^8 bytes) upload (and its time, from
  the first byte sent to the answer), and during the same upload sent without credentials (the kernel's
  VmHWM is reset to the current RSS just before: the growth is peak - RSS before); a small upload first, so
  the upload code is imported before the measure starts;
- time to refuse: from sending the headers of a POST announcing 300 MB (with credentials) to receiving the
  status line; and the same for a 100 MB POST to the upload route without credentials (headers only). Stock
  daphne waits for the body, so it is given `--wait` seconds and shown as "no answer".

Targets (issue 13): peak RSS growth <= +64 MiB for the accepted upload, refusal <= 100 ms. The script is a
report: it always exits 0 and ends with `targets met: X/Y`.

    .venv/bin/python bench/upload_memory.py              # 100 MB, 20 refusals each (~1 min)
    .venv/bin/python bench/upload_memory.py --quick      # 10 MB, 5 refusals each
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proget_web.settings")
os.environ.setdefault("PROGET_DATA_DIR", tempfile.mkdtemp(prefix="bench-upload-"))
django.setup()

from tests.faults.support import FEED, node_prepare, upload_request  # noqa: E402
from tests.feeds.builders import wheel  # noqa: E402
from tests.processes import WEB_SERVER, start_daphne, stop  # noqa: E402

MIB = 1024 * 1024
STOCK_DAPHNE = (str(ROOT / ".venv" / "bin" / "daphne"),)
OVERSIZED_BYTES = 300 * 1000 * 1000
TARGET_RSS_GROWTH_MIB = 64.0
TARGET_REFUSAL_MS = 100.0
# Stock daphne parses a 100 MB form for many seconds on a loaded 2-core VM before it answers; this is a hang.
UPLOAD_TIMEOUT_SECONDS = 300


def rss(pid: int, field: str) -> int:
    """`field` (VmRSS, VmHWM) of process `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def peak_growth(pid: int, action: Callable[[], object]) -> float:
    """How far the process's RSS peaked above its RSS before `action`, in MiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)
    before = rss(pid, "VmRSS")
    action()
    return (rss(pid, "VmHWM") - before) / MIB


def post(port: int, body: bytes, headers: dict[str, str]) -> bytes:
    """POST `body` to the upload route; the first bytes of the answer (b"" if the server closed without one).
    A server that answers before the whole body is in may stop reading: the send error is not the answer."""
    head = "".join(f"{name}: {value}\r\n" for name, value in {
        **headers, "Host": f"127.0.0.1:{port}", "Content-Length": str(len(body)), "Connection": "close"}.items())
    with socket.create_connection(("127.0.0.1", port), timeout=UPLOAD_TIMEOUT_SECONDS) as sock:
        with contextlib.suppress(ConnectionError):
            sock.sendall(f"POST /pypi/{FEED}/legacy/ HTTP/1.1\r\n{head}\r\n".encode() + body)
        try:
            return sock.recv(256)
        except ConnectionError:
            return b""


def refusal_ms(port: int, *, length: int, headers: dict[str, str], wait: float) -> tuple[float | None, bytes]:
    """Milliseconds from sending the headers (no body) to the status line, or None after `wait` s; and the line."""
    head = "".join(f"{name}: {value}\r\n" for name, value in {
        **headers, "Host": f"127.0.0.1:{port}", "Content-Length": str(length)}.items())
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        started = time.perf_counter()
        sock.sendall(f"POST /pypi/{FEED}/legacy/ HTTP/1.1\r\n{head}\r\n".encode())
        try:
            answer = sock.recv(256)
        except TimeoutError:
            return None, b""
        return (time.perf_counter() - started) * 1000, answer.split(b"\r\n", 1)[0]


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode("latin-1") or "closed without an answer"


def refusal_times(port: int, *, length: int, headers: dict[str, str], count: int, wait: float) -> str:
    """`count` refusals timed (stopping at the first that gets no answer), as one table cell."""
    answered: list[float] = []
    for _ in range(count):
        ms, line = refusal_ms(port, length=length, headers=headers, wait=wait)
        if ms is None:
            return f"no answer in {wait:g} s"
        answered.append(ms)
    return f"p50 {statistics.median(answered):.1f} ms, max {max(answered):.1f} ms ({status_line(line)})"


def measure(server: Sequence[str], data: Path, package: Path, *, refusals: int, wait: float) -> dict[str, str]:
    """Every row's figure for one server."""
    body, headers = upload_request(package)
    anonymous = {"Content-Type": headers["Content-Type"]}
    process, port = start_daphne(data, log=data / "web.log", server=server)
    try:
        warm_body, _ = upload_request(wheel(data / "built", "warm", str(time.time_ns())))
        post(port, warm_body, headers)
        answers: list[bytes] = []
        started = time.perf_counter()
        accepted = peak_growth(process.pid, lambda: answers.append(post(port, body, headers)))
        upload_seconds = time.perf_counter() - started
        anonymous_growth = peak_growth(process.pid, lambda: answers.append(post(port, body, anonymous)))
        rows = {
            "accepted": f"{accepted:+.1f} MiB ({status_line(answers[0])})",
            "upload-time": f"{upload_seconds:.2f} s",
            "anonymous": f"{anonymous_growth:+.1f} MiB ({status_line(answers[1])})",
            "oversized": refusal_times(port, length=OVERSIZED_BYTES, headers=headers, count=refusals, wait=wait),
            "anon-refusal": refusal_times(port, length=len(body), headers=anonymous, count=refusals, wait=wait),
        }
        return rows
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 MB and 5 refusals each")
    parser.add_argument("--wait", type=float, default=3.0, help="seconds to wait for an answer")
    args = parser.parse_args()
    size, refusals = (10 * 1000 * 1000, 5) if args.quick else (100 * 1000 * 1000, 20)
    data = node_prepare(Path(os.environ["PROGET_DATA_DIR"]))
    (data / "built").mkdir(exist_ok=True)
    payload = os.urandom(size)  # one package per server (1.0, 2.0): the second upload is not a duplicate
    ours_package, reference_package = (wheel(data / "built", "big", version, extra={"big_data.bin": payload})
                                       for version in ("1.0", "2.0"))
    print(f"package {ours_package.name}: {ours_package.stat().st_size / 1e6:.1f} MB", file=sys.stderr, flush=True)
    ours = measure(WEB_SERVER, data, ours_package, refusals=refusals, wait=args.wait)
    reference = measure(STOCK_DAPHNE, data, reference_package, refusals=refusals, wait=args.wait)
    megabytes = f"{size / 1e6:g} MB"
    table = [
        ("accepted", f"peak RSS growth, authenticated {megabytes} upload", f"<= +{TARGET_RSS_GROWTH_MIB:g} MiB",
         lambda cell: float(cell.split()[0]) <= TARGET_RSS_GROWTH_MIB),
        ("upload-time", f"time of the authenticated {megabytes} upload (to the answer)", "-", None),
        ("anonymous", f"peak RSS growth, anonymous {megabytes} upload", "-", None),
        ("oversized", "time to refuse 300 MB announced (headers only)", f"<= {TARGET_REFUSAL_MS:g} ms",
         lambda cell: cell.startswith("p50") and float(cell.split()[1]) <= TARGET_REFUSAL_MS),
        ("anon-refusal", f"time to refuse anonymous {megabytes} (headers only)", f"<= {TARGET_REFUSAL_MS:g} ms",
         lambda cell: cell.startswith("p50") and float(cell.split()[1]) <= TARGET_REFUSAL_MS),
    ]
    header = ("measurement", "ours (proget_web.serve)", "reference (stock daphne)", "target", "result")
    lines = [(label, ours[key], reference[key], target, "info" if check is None else
              ("PASS" if check(ours[key]) else "FAIL")) for key, label, target, check in table]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    for row in [header, tuple("-" * width for width in widths), *lines]:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    checked = [line for line in lines if line[4] != "info"]
    print(f"targets met: {sum(line[4] == 'PASS' for line in checked)}/{len(checked)}")


if __name__ == "__main__":
    main()
