"""Benchmark: `uv pip compile` from a feed that serves core metadata (PEP 658/714) against one that does not, one run.

Run `.venv/bin/python bench/core_metadata.py [--rounds N] [--payload-kib K]`.

The tree (generated wheels, real METADATA/WHEEL/RECORD): `root` needs 4 `mid-*`, each needing 4 `leaf-*` (21
projects), 5 versions each. The newest version of every mid needs a leaf release that does not exist, so the
resolver must read it and backtrack: 25 metadata reads. Every wheel carries `--payload-kib` of incompressible
data, stored (a wheel with code in it; 256 KiB by default, a small real wheel).

Two feeds hold the same files (hard links) and are indexed the same way; then the rows of feed `plain` lose their
stored core metadata, which is what a server without PEP 658 (or a row not yet backfilled) serves: no
`core-metadata` key, no `.metadata` file. A real daphne serves both with an access log. Each round runs
`uv pip compile` of `root` against each feed, in turns, with a fresh cache (`--no-cache`), once straight to
daphne's loopback and once through a link of `--link-mbit` (default 100 Mbit/s, an office or VPN link), both via a
proxy in this process that counts what reaches uv and, for the link, paces it (one rate shared by all of uv's
parallel connections); reported: median and best wall time, requests (from the access log) and the bytes uv
received per resolution. uv without metadata tries an HTTP range request for the wheel's METADATA; our downloads
answer 200 with the whole file, so it streams the wheel up to the METADATA (bdist_wheel, like these, puts
.dist-info last), then drops the connection.
The output is a report; exit code 0 whatever the numbers (non-zero only if a resolution fails or differs).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

WORK = Path(tempfile.mkdtemp(prefix="bench-core-metadata-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "proget_web.settings"
os.environ["PROGET_DATA_DIR"] = str(WORK / "data")
os.environ.pop("DATABASE_URL", None)  # the embedded SQLite, here and in daphne
os.environ.setdefault("PROGET_LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from feeds.indexing import feed_index  # noqa: E402
from feeds.models import PackageFile  # noqa: E402
from feeds.services import feed_create  # noqa: E402
from settings_store.services import setting_set  # noqa: E402
from tests.feeds.builders import wheel  # noqa: E402
from tests.processes import WEB_SERVER, start_daphne, stop  # noqa: E402

VERSIONS = ("1.0", "2.0", "3.0", "4.0", "5.0")
FANOUT = 4  # mids under root, leaves under each mid
# A uv resolution of 21 projects takes about a second here; this is a hang.
UV_TIMEOUT_SECONDS = 300
UV = Path(sys.executable).with_name("uv")


def tree(folder: Path, *, payload: int) -> int:
    """Write the tree's wheels into `folder`; the number of wheels."""
    count = 0

    def write(name: str, requires: dict[str, tuple[str, ...]]) -> None:
        nonlocal count
        for version in VERSIONS:
            extra = {f"{name.replace('-', '_')}_data.bin": os.urandom(payload)}
            wheel(folder, name, version, requires=requires.get(version, requires.get("*", ())), extra=extra)
            count += 1

    mids = [f"mid-{index}" for index in range(FANOUT)]
    write("root", {"*": tuple(mids)})
    for mid in mids:
        leaves = [f"leaf-{mid[4:]}-{index}" for index in range(FANOUT)]
        # The newest mid needs a leaf release that does not exist: the resolver reads it and backtracks.
        write(mid, {"*": tuple(leaves), VERSIONS[-1]: (f"{leaves[0]}>=99",)})
        for leaf in leaves:
            write(leaf, {})
    return count


# Bytes the proxy moves per read: small enough that pacing is smooth at the link's rate.
LINK_CHUNK_BYTES = 16 * 1024


class Link:
    """A TCP proxy (its own thread and event loop) in front of 127.0.0.1:`target`, counting the bytes it answers with;
    they share `mbit` Mbit/s (None: as fast as loopback goes)."""

    def __init__(self, *, target: int, mbit: float | None) -> None:
        self.target, self.rate = target, mbit * 1e6 / 8 if mbit else None  # bytes per second
        self.next_free = 0.0  # when the link has sent everything queued so far (event loop time)
        self.sent = 0
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _relay(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target)
        await asyncio.gather(self._pipe(client_in, server_out, paced=False),
                             self._pipe(server_in, client_out, paced=True), return_exceptions=True)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, paced: bool) -> None:
        try:
            while data := await source.read(LINK_CHUNK_BYTES):
                if paced and self.rate:  # wait for this chunk's turn on the shared link
                    self.next_free = max(self.loop.time(), self.next_free) + len(data) / self.rate
                    await asyncio.sleep(self.next_free - self.loop.time())
                sink.write(data)
                if paced:
                    self.sent += len(data)
                await sink.drain()
        finally:
            sink.close()

    def close(self) -> None:
        """End every relay (uv has exited; some keep-alive connections are still open), then the loop."""

        async def relays_end() -> None:
            relays = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(relays_end(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)


def uv_compile(base: str, feed: str, requirements: Path) -> tuple[float, str]:
    """Wall time and output of `uv pip compile` of `requirements` against `feed`."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(UV), "pip", "compile", str(requirements), "--index-url", f"{base}/pypi/{feed}/simple/", "--no-cache",
         "--no-config", "--python", sys.executable, "--quiet", "--no-header", "--no-annotate"],
        capture_output=True, text=True, timeout=UV_TIMEOUT_SECONDS, env={**os.environ, "UV_NO_PROGRESS": "1"},
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"uv pip compile against {feed} failed:\n{result.stderr}")
    return elapsed, result.stdout


def served(access: Path, start: int) -> tuple[int, int]:
    """Requests and .metadata requests in the access log after byte offset `start`."""
    lines = access.read_bytes()[start:].decode().splitlines()
    return len(lines), sum(1 for line in lines if '.metadata"' in line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--payload-kib", type=int, default=256)
    parser.add_argument("--link-mbit", type=float, default=100.0)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    setting_set(name="Storage.PackagesRootPath", value=str(WORK / "packages"), actor="bench", source="bench")
    with_metadata, plain = feed_create(name="meta"), feed_create(name="plain")
    wheels = tree(with_metadata.storage, payload=args.payload_kib * 1024)
    for path in with_metadata.storage.iterdir():
        os.link(path, plain.storage / path.name)
    for feed in (with_metadata, plain):
        report = feed_index(feed=feed)
        assert (report.read, report.errors) == (wheels, 0), report.summary()
    PackageFile.objects.filter(feed=plain).update(core_metadata=None, core_metadata_sha256="")
    requirements = WORK / "requirements.in"
    requirements.write_text("root\n")
    access = WORK / "access.log"
    daphne, port = start_daphne(WORK / "data", log=WORK / "daphne.log",
                                server=(*WEB_SERVER, "--access-log", str(access)))
    links = {"loopback": Link(target=port, mbit=None),
             f"{args.link_mbit:g} Mbit/s": Link(target=port, mbit=args.link_mbit)}
    bases = {path: f"http://127.0.0.1:{link.port}" for path, link in links.items()}
    results: dict[tuple[str, str], list[tuple[float, int, int, int]]] = {}
    outputs: dict[str, str] = {}
    try:
        for feed in ("meta", "plain"):  # warm-up: daphne's first requests import and compile what the rest reuse
            outputs[feed] = uv_compile(bases["loopback"], feed, requirements)[1]
        for _ in range(args.rounds):
            for path, base in bases.items():
                for feed in ("meta", "plain"):
                    start, sent = access.stat().st_size, links[path].sent
                    elapsed, output = uv_compile(base, feed, requirements)
                    if output != outputs[feed]:
                        sys.exit(f"resolution against {feed} changed between runs")
                    results.setdefault((path, feed), []).append(
                        (elapsed, *served(access, start), links[path].sent - sent))
    finally:
        for link in links.values():
            link.close()
        stop(daphne)
    if outputs["meta"] != outputs["plain"]:
        sys.exit(f"the two feeds resolve differently:\n{outputs['meta']}\n---\n{outputs['plain']}")
    print(f"{subprocess.run([str(UV), '--version'], capture_output=True, text=True).stdout.strip()}; "
          f"{wheels} wheels of ~{args.payload_kib} KiB, 21 projects; {args.rounds} rounds; resolution: "
          + ", ".join(outputs["meta"].split()))
    print(f"{'path':<16}{'feed':<26}{'median s':>10}{'best s':>9}{'requests':>10}{'.metadata':>11}{'MB to uv':>10}")
    for path in bases:
        medians = {}
        for feed, label in (("meta", "with core metadata"), ("plain", "without (wheels read)")):
            rows = results[(path, feed)]
            medians[feed] = statistics.median(row[0] for row in rows)
            _, requests, metadata, sent = rows[-1]
            print(f"{path:<16}{label:<26}{medians[feed]:>10.2f}{min(row[0] for row in rows):>9.2f}{requests:>10}"
                  f"{metadata:>11}{sent / 1e6:>10.2f}")
        print(f"{path:<16}without / with: {medians['plain'] / medians['meta']:.1f}x the time")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
