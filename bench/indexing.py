"""Benchmark: indexing a large feed, and serving its simple pages, against pypiserver on the same folder, one run.

Run `.venv/bin/python bench/indexing.py [--quick] [--files N] [--projects N] [--requests N] [--profile]`.

What is measured (default: 10,000 wheels across 1,000 projects, one of which has 1,000 files; `--quick`: 1,000
wheels across 100 projects, the big one with 100 files):

- indexing, through `feeds.indexing.feed_index(feed=...)` in this process, on SQLite (WAL) in a temp
  PROGET_DATA_DIR: the first full index, a reindex with nothing changed, and a reindex after 100 files were
  rewritten (new content, new mtime). Each report is checked (files read / unchanged / errors). The reference is
  the stdlib floor for the same work with no database: sha256 plus the wheel's METADATA read with zipfile for every
  file read, and one lstat per file for the unchanged ones.
- serving: a real daphne (`tests/feeds/servers.py`) serving the feed and `pypi-server run` (pypiserver, its default
  WSGI server and backend; `--pypiserver-server` / `--pypiserver-backend` pass others) serving the same folder, both
  running at once. For `/simple/<project>/` of the big project and the full `/simple/` listing, N sequential GETs
  (`Accept: text/html`, what pypiserver speaks) over one keep-alive http.client connection per server, after a
  warm-up; the requests are split into 10 blocks that the two servers take in turns, so machine drift hits both
  alike. Each answer is checked once (status 200, one link per file or project). Our PEP 691 JSON answer is
  measured the same way, for information (pypiserver has none).

The wheels are real (METADATA, WHEEL, RECORD with hashes, deflated; pip and our reader accept them), built in
memory from one template per project with only the version varied. The output is a report (exit code 0 whatever
the numbers): one row per measurement, ratios ours/reference, then "targets met: X/Y" (the issue's targets) and
"aims met" (ours faster than pypiserver). `--profile` adds cProfile's top functions for the first index and for
the big project's page rendered in-process (django.test.Client), to show where our time goes.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import hashlib
import http.client
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

WORK = Path(tempfile.mkdtemp(prefix="bench-indexing-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "proget_web.settings"
os.environ["PROGET_DATA_DIR"] = str(WORK / "data")
os.environ.pop("DATABASE_URL", None)  # always the embedded SQLite (WAL), here and in daphne (node_env drops it too)
os.environ.setdefault("PROGET_LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from feeds.indexing import IndexReport, feed_index  # noqa: E402
from feeds.models import PackageFile  # noqa: E402
from feeds.services import feed_create  # noqa: E402
from tests.feeds.servers import accepts, daphne_serving  # noqa: E402
from tests.processes import free_port, stop, wait_for  # noqa: E402

# --- what the issue asks for ---

TARGET_FIRST_INDEX_S = 60.0
TARGET_REINDEX_S = 3.0
TARGET_REINDEX_CHANGED_S = 2.0
TARGET_PROJECT_PAGE_P50_MS = 50.0
AIM_RATIO = 1.0  # ours p50 / pypiserver p50: ours faster
CHANGED_FILES = 100

# --- bench mechanics ---

FEED = "bench"
BLOCKS = 10  # the timed requests are split into this many blocks, taken in turns by the servers
WARMUP_REQUESTS = 20
HTML = "text/html"
JSON = "application/vnd.pypi.simple.v1+json"
WHEEL_FILE = b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
ZIP_DATE = (2020, 1, 1, 0, 0, 0)
SERVER_START_TIMEOUT_S = 60


# --- the feed folder ---


@dataclass(frozen=True)
class Layout:
    files: int
    projects: int
    big: int  # files of the one big project (the page measured)

    def counts(self) -> list[int]:
        """Files per project: the big one first, the rest spread evenly over the other projects."""
        rest, others = self.files - self.big, self.projects - 1
        return [self.big] + [rest // others + (index < rest % others) for index in range(others)]

    @staticmethod
    def project(index: int) -> str:
        return f"bench-proj-{index:04d}"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_bytes(name: str, version: str, *, summary: str) -> tuple[str, bytes]:
    """(file name, content) of a valid pure-Python wheel: one module, METADATA, WHEEL and a RECORD with hashes."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    members = {
        f"{dist}_mod.py": f"VERSION = {version!r}\n".encode(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n"
            f"Requires-Python: >=3.8\n\n"
        ).encode(),
        f"{info}/WHEEL": WHEEL_FILE,
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in members.items())
    members[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(zipfile.ZipInfo(member, ZIP_DATE), data, compress_type=zipfile.ZIP_DEFLATED)
    return f"{dist}-{version}-py3-none-any.whl", buffer.getvalue()


def write_atomically(path: Path, data: bytes) -> None:
    """As docs/feeds.md asks of anyone copying into a feed folder: a dot-name temp, then a rename."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    temp.rename(path)


def generate(folder: Path, layout: Layout) -> list[tuple[str, str, Path]]:
    """Write the wheels; return (project, version, path) for each."""
    written = []
    for index, count in enumerate(layout.counts()):
        name = Layout.project(index)
        for number in range(count):
            version = f"{number // 100}.{number % 100}.0"
            filename, data = wheel_bytes(name, version, summary=f"{name}, a package of the indexing bench")
            path = folder / filename
            path.write_bytes(data)  # nothing indexes the folder while it is filled
            written.append((name, version, path))
    return written


def change(wheels: list[tuple[str, str, Path]], count: int) -> list[Path]:
    """Rewrite `count` wheels spread over the feed with new content and a newer mtime; return their paths."""
    chosen = wheels[:: max(1, len(wheels) // count)][:count]
    for name, version, path in chosen:
        before = path.stat().st_mtime_ns
        _, data = wheel_bytes(name, version, summary=f"{name}, rebuilt")
        write_atomically(path, data)
        later = max(time.time_ns(), before + 1_000_000_000)
        os.utime(path, ns=(later, later))
    return [path for _, _, path in chosen]


# --- the indexing references: the same reads with no database ---


def floor_read(paths: list[Path]) -> None:
    """sha256 and the METADATA member of each wheel, as the indexer reads them, without storing anything."""
    for path in paths:
        with path.open("rb") as stream:
            digest = hashlib.sha256()
            while chunk := stream.read(1024 * 1024):
                digest.update(chunk)
            digest.hexdigest()
            with zipfile.ZipFile(stream) as archive:
                member = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
                archive.read(member)


def floor_scan(folder: Path) -> None:
    """List the folder and lstat every package file: what deciding "unchanged" needs at the least."""
    for entry in os.scandir(folder):
        if not entry.name.startswith("."):
            os.lstat(entry.path)


def timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


# --- the servers ---


@contextlib.contextmanager
def pypiserver_serving(folder: Path, *, log: Path, server: str, backend: str) -> Iterator[str | None]:
    """Run `pypi-server run` on `folder` on a free port; yield its base URL (None when it is not installed)."""
    command = Path(sys.executable).parent / "pypi-server"
    if not command.exists():
        yield None
        return
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [str(command), "run", "-p", str(port), "-i", "127.0.0.1", "-a", ".", "-P", ".", "--disable-fallback",
             "--server", server, "--backend", backend, "--log-stream", "none", str(folder)],
            stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: process.poll() is not None or accepts(port), timeout=SERVER_START_TIMEOUT_S,
                 what="pypi-server to listen")
        if process.poll() is not None:
            raise RuntimeError(f"pypi-server exited: {log.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def pypiserver_version() -> str:
    try:
        from importlib.metadata import version
        return version("pypiserver")
    except Exception:  # noqa: BLE001 - only a label
        return "?"


@dataclass
class Client:
    """One keep-alive connection to a server; counts how often the server closed it."""

    base: str
    connection: http.client.HTTPConnection = field(init=False)
    reconnects: int = 0
    server_header: str = ""

    def __post_init__(self) -> None:
        host, port = self.base.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=120)

    def get(self, path: str, accept: str) -> tuple[int, bytes]:
        self.connection.request("GET", path, headers={"Accept": accept})
        response = self.connection.getresponse()
        body = response.read()
        self.server_header = response.getheader("Server", "") or self.server_header
        if response.will_close:
            self.reconnects += 1
        return response.status, body

    def close(self) -> None:
        self.connection.close()


@dataclass(frozen=True)
class Target:
    """One server's URL for one measurement."""

    client: Client
    path: str
    accept: str = HTML


def measure(targets: dict[str, Target], requests: int) -> dict[str, list[float]]:
    """Latencies in ms: warm-up, then `requests` sequential GETs per target in BLOCKS blocks taken in turns."""
    for target in targets.values():
        for _ in range(WARMUP_REQUESTS):
            target.client.get(target.path, target.accept)
    results: dict[str, list[float]] = {name: [] for name in targets}
    per_block = max(1, requests // BLOCKS)
    while any(len(values) < requests for values in results.values()):
        for name, target in targets.items():
            for _ in range(min(per_block, requests - len(results[name]))):
                start = time.perf_counter_ns()
                target.client.get(target.path, target.accept)
                results[name].append((time.perf_counter_ns() - start) / 1e6)
    return results


def check_page(client: Client, path: str, accept: str, links: int) -> str:
    """'' when the page answers 200 with exactly `links` links (or JSON entries), else what is wrong."""
    status, body = client.get(path, accept)
    if status != 200:
        return f"NOT VERIFIED: {path} answered {status}"
    found = body.count(b'"filename"') + body.count(b'{"name"') if accept == JSON else body.count(b"<a ")
    return "" if found == links else f"NOT VERIFIED: {found} links, expected {links}"


# --- the report ---


@dataclass(frozen=True, kw_only=True)
class Row:
    name: str
    ours: str
    reference: str = "-"
    ratio: float | None = None
    target: str = "-"
    met: bool | None = None  # None: information only
    aim: bool | None = None  # ours faster than pypiserver; None: no aim on this row
    note: str = ""

    def result(self) -> str:
        parts = []
        if self.met is not None:
            parts.append("PASS" if self.met and not self.note else "FAIL")
        if self.aim is not None:
            parts.append("aim met" if self.aim else "aim missed")
        return ", ".join(parts) or "info"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # what ran against what, printed above the table

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  measured: {row.name}", file=sys.stderr, flush=True)

    def render(self) -> str:
        header = ("measurement", "ours", "reference", "ratio", "target", "result")
        lines = [header] + [
            (row.name, row.ours, row.reference, "-" if row.ratio is None else f"{row.ratio:.2f}x", row.target,
             row.result() + (f"  {row.note}" if row.note else ""))
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
        rendered = [" | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + " | " + line[-1]
                    for line in lines]
        rendered.insert(1, "-+-".join("-" * width for width in widths) + "-+-" + "-" * 6)
        return "\n".join(rendered)

    def summary(self) -> str:
        targets = [row for row in self.rows if row.met is not None]
        aims = [row for row in self.rows if row.aim is not None]
        line = f"targets met: {sum(row.result().startswith('PASS') for row in targets)}/{len(targets)}"
        if aims:
            line += f"; aims met (ours faster than pypiserver): {sum(bool(row.aim) for row in aims)}/{len(aims)}"
        return line


def seconds(value: float) -> str:
    return f"{value:,.2f} s"


def ms(value: float) -> str:
    return f"{value:,.1f} ms"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def index_note(report: IndexReport, *, files: int, read: int) -> str:
    """'' when the indexing report is what the step should produce, else what is off."""
    expected = (files, read, files - read, 0, 0, False)
    got = (report.files, report.read, report.unchanged, report.removed, report.errors, report.stopped)
    return "" if got == expected else f"NOT VERIFIED: {report.summary()}"


def index_row(name: str, spent: float, report: IndexReport, floor: float, floor_text: str, *, limit: float,
              files: int, read: int) -> Row:
    return Row(name=name, ours=f"{seconds(spent)} ({report.read:,} read)", reference=f"{seconds(floor)} {floor_text}",
               ratio=spent / floor if floor else None, target=f"<= {limit:g} s", met=spent <= limit,
               note=index_note(report, files=files, read=read))


def latency_rows(report: Report, label: str, results: dict[str, list[float]], *, p50_limit: float | None,
                 notes: dict[str, str]) -> None:
    """p50 (with its target and aim) and p99 rows: ours HTML against pypiserver, then ours JSON for information."""
    ours, reference, json = results["ours"], results.get("pypiserver"), results["ours-json"]
    ref_p50 = statistics.median(reference) if reference else None
    ref_p99 = percentile(reference, 0.99) if reference else None
    ref_text = "pypiserver not installed"
    target = f"p50 <= {p50_limit:g} ms" if p50_limit is not None else "-"
    note = notes.get("ours", "") or notes.get("pypiserver", "")
    p50 = statistics.median(ours)
    report.add(Row(
        name=f"{label} p50, HTML", ours=ms(p50), reference=f"{ms(ref_p50)} pypiserver" if reference else ref_text,
        ratio=p50 / ref_p50 if ref_p50 else None,
        target=(target + f", aim < {AIM_RATIO:g}x" if p50_limit is not None else f"aim < {AIM_RATIO:g}x"),
        met=p50 <= p50_limit if p50_limit is not None else None,
        aim=(p50 / ref_p50 < AIM_RATIO) if ref_p50 else None, note=note,
    ))
    p99 = percentile(ours, 0.99)
    report.add(Row(name=f"{label} p99, HTML", ours=ms(p99),
                   reference=f"{ms(ref_p99)} pypiserver" if reference else ref_text,
                   ratio=p99 / ref_p99 if ref_p99 else None))
    json_p50 = statistics.median(json)
    report.add(Row(name=f"{label} p50, ours JSON (PEP 691) vs pypiserver HTML", ours=ms(json_p50),
                   reference=f"{ms(ref_p50)} pypiserver" if reference else ref_text,
                   ratio=json_p50 / ref_p50 if ref_p50 else None, note=notes.get("ours-json", "")))


# --- profiling (--profile) ---


def profiled(title: str, action: Callable[[], object], *, top: int = 25) -> None:
    profile = cProfile.Profile()
    profile.enable()
    action()
    profile.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profile, stream=stream)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    print(f"\n=== cProfile: {title} ===\n{stream.getvalue()}", file=sys.stderr)


# --- the run ---


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 wheels / 100 projects (< 60 s)")
    parser.add_argument("--files", type=int, help="wheels in the feed (default 10,000; --quick 1,000)")
    parser.add_argument("--projects", type=int, help="projects (default 1,000; --quick 100)")
    parser.add_argument("--big", type=int, help="files of the big project whose page is measured (default files/10)")
    parser.add_argument("--requests", type=int,
                        help="timed requests per server and page (default 200; --quick 100)")
    parser.add_argument("--pypiserver-server", default="auto", help="pypi-server --server (default: its own, auto)")
    parser.add_argument("--pypiserver-backend", default="auto", help="pypi-server --backend (default: its own, auto)")
    parser.add_argument("--profile", action="store_true", help="cProfile the first index and the big page (stderr)")
    parser.add_argument("--keep", action="store_true", help=f"keep the temp folder ({WORK})")
    args = parser.parse_args()
    files = args.files or (1_000 if args.quick else 10_000)
    projects = args.projects or (100 if args.quick else 1_000)
    args.requests = args.requests or (100 if args.quick else 200)
    layout = Layout(files=files, projects=projects, big=args.big or files // 10)
    if not 0 < layout.big <= files - (projects - 1) or projects < 2 or files - layout.big < projects - 1:
        parser.error("need at least one file per project and a big project that fits")
    started = time.perf_counter()
    report = Report()
    try:
        run(args, layout, report)
    except Exception as exc:  # a report, not a test: say what broke, print what was measured, exit 0
        traceback.print_exc()
        report.add(Row(name="bench stopped early", ours=f"{type(exc).__name__}: {exc}"[:120], met=False))
    finally:
        if args.keep:
            print(f"kept {WORK}", file=sys.stderr)
        else:
            shutil.rmtree(WORK, ignore_errors=True)
    print()
    print("\n".join(report.header))
    print(f"load average at the end: {' '.join(f'{value:.2f}' for value in os.getloadavg())} "
          f"on {os.cpu_count()} CPU(s)")
    print(report.render())
    print(report.summary())
    print(f"({time.perf_counter() - started:.0f} s)")


def run(args: argparse.Namespace, layout: Layout, report: Report) -> None:
    call_command("migrate", verbosity=0, interactive=False)
    feed = feed_create(name=FEED)
    folder = feed.storage.resolve()
    print(f"feed folder {folder}: writing {layout.files:,} wheels across {layout.projects:,} projects",
          file=sys.stderr, flush=True)
    spent, wheels = timed(lambda: generate(folder, layout))
    total_bytes = sum(path.stat().st_size for _, _, path in wheels)
    report.add(Row(name=f"generate {layout.files:,} wheels / {layout.projects:,} projects (bench setup)",
                   ours=f"{seconds(spent)} ({total_bytes / 1e6:.1f} MB)"))
    paths = [path for _, _, path in wheels]

    # Indexing: ours, then the no-database floor on the same (page-cached) files.
    if args.profile:
        profiled("first full index (feed_index)", lambda: feed_index(feed=feed))
        PackageFile.objects.filter(feed=feed).delete()  # the measured first index starts from nothing again
    spent, first = timed(lambda: feed_index(feed=feed))
    floor, _ = timed(lambda: floor_read(paths))
    report.add(index_row(f"first full index ({layout.files:,} files)", spent, first, floor,
                         "stdlib sha256+METADATA, no DB", limit=TARGET_FIRST_INDEX_S, files=layout.files,
                         read=layout.files))
    spent, again = timed(lambda: feed_index(feed=feed))
    floor, _ = timed(lambda: floor_scan(folder))
    report.add(index_row("reindex, nothing changed", spent, again, floor, "scandir+lstat", limit=TARGET_REINDEX_S,
                         files=layout.files, read=0))
    changed = change(wheels, CHANGED_FILES)
    spent, after = timed(lambda: feed_index(feed=feed))
    floor, _ = timed(lambda: (floor_scan(folder), floor_read(changed)))
    report.add(index_row(f"reindex after {len(changed)} files changed", spent, after, floor,
                         f"scandir+lstat, {len(changed)} read", limit=TARGET_REINDEX_CHANGED_S, files=layout.files,
                         read=len(changed)))

    big = Layout.project(0)
    if args.profile:
        from django.test import Client as DjangoClient
        django_client = DjangoClient(HTTP_ACCEPT=HTML, HTTP_HOST="127.0.0.1")
        profiled(f"/simple/{big}/ ({layout.big} files) x 50, in-process",
                 lambda: [django_client.get(f"/pypi/{FEED}/simple/{big}/") for _ in range(50)])
        profiled(f"/simple/ ({layout.projects} projects) x 50, in-process",
                 lambda: [django_client.get(f"/pypi/{FEED}/simple/") for _ in range(50)])

    # Serving: both servers up at once, requests taken in turns.
    with contextlib.ExitStack() as stack:
        print("starting daphne and pypi-server", file=sys.stderr, flush=True)
        ours_base = stack.enter_context(daphne_serving(Path(os.environ["PROGET_DATA_DIR"]), log=WORK / "daphne.log"))
        ref_base = stack.enter_context(pypiserver_serving(
            folder, log=WORK / "pypiserver.log", server=args.pypiserver_server, backend=args.pypiserver_backend))
        clients = {"ours": Client(ours_base), "ours-json": Client(ours_base)}
        if ref_base is not None:
            clients["pypiserver"] = Client(ref_base)
        for client in clients.values():
            stack.callback(client.close)
        pages = [
            (f"/simple/{big}/ ({layout.big:,} files)", f"/pypi/{FEED}/simple/{big}/", f"/simple/{big}/", layout.big,
             TARGET_PROJECT_PAGE_P50_MS),
            (f"/simple/ ({layout.projects:,} projects)", f"/pypi/{FEED}/simple/", "/simple/", layout.projects, None),
        ]
        for label, ours_path, ref_path, links, limit in pages:
            targets = {"ours": Target(clients["ours"], ours_path), "ours-json": Target(clients["ours-json"], ours_path,
                                                                                         JSON)}
            if "pypiserver" in clients:
                targets["pypiserver"] = Target(clients["pypiserver"], ref_path)
            notes = {name: check_page(target.client, target.path, target.accept, links)
                     for name, target in targets.items()}
            results = measure(targets, args.requests)
            latency_rows(report, label, results, p50_limit=limit, notes=notes)

    report.header.append(
        f"{layout.files:,} wheels, {layout.projects:,} projects (big project: {layout.big:,} files); "
        f"{args.requests} sequential keep-alive GETs per row after {WARMUP_REQUESTS} warm-up, {BLOCKS} blocks "
        f"in turns")
    report.header.append(f"ours: daphne (Server: {clients['ours'].server_header or '?'}), SQLite WAL; "
                         f"server-closed connections: {clients['ours'].reconnects}")
    if "pypiserver" in clients:
        report.header.append(
            f"reference: pypiserver {pypiserver_version()} --server {args.pypiserver_server} --backend "
            f"{args.pypiserver_backend} (Server: {clients['pypiserver'].server_header or '?'}); server-closed "
            f"connections: {clients['pypiserver'].reconnects}")
    else:
        report.header.append("reference: pypiserver not installed (make bench-deps)")

if __name__ == "__main__":
    main()
