"""Resolving a private feed with uv: an API key as the basic-auth password vs anonymous (and vs a password).

Run `.venv/bin/python bench/private_resolve.py [--rounds 5] [--packages 41] [--client uv|pip]`.
One real daphne with the production settings (PBKDF2 password hasher) on a temp data dir with the embedded
defaults; the feed `private` holds a tree of PACKAGES wheels (`app` needs `dep-01` .. `dep-NN`, each in two
versions), indexed by a real `runindexer --once`. Each round resolves `app` with `uv pip compile` (or
`pip install --dry-run` with --client pip; no cache, so every simple page and file is fetched) three ways, in
turns so that a noisy neighbour hits them alike:

- anonymous: Feeds.AnonymousRead on, no credentials;
- key: Feeds.AnonymousRead off, `http://api:<key>@.../simple/` (a feeds:read key; what CI does);
- password: Feeds.AnonymousRead off, a user's name and password (each request runs PBKDF2), for reference.

Target (issue 13): key <= 1.2x anonymous. The script is a report: it prints the medians and ratios and exits 0;
`--check` exits 1 when the target is missed. uv comes with bench/requirements.txt (`make bench-deps`); without it
the default client is pip.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.nodes import load_average  # noqa: E402
from tests.feeds.builders import wheel  # noqa: E402
from tests.feeds.servers import daphne_serving  # noqa: E402
from tests.processes import manage, migrate  # noqa: E402

FEED = "private"
USER = "bench"
PASSWORD = "bench-resolve-pw-1"
# Issue 13's tree: 41 packages (app and 40 dependencies).
PACKAGES = 41
TARGET_RATIO = 1.2
# One uv resolution of ~41 packages takes about a second anonymously (pip a few); minutes mean a hang.
RESOLVE_TIMEOUT = 300
MODES = ("anonymous", "key", "password")


def uv_binary() -> Path | None:
    """uv next to this interpreter (the venv's bin), or None."""
    candidate = Path(sys.executable).parent / "uv"
    return candidate if candidate.exists() else None


def build_feed(data: Path, packages: int) -> str:
    """Migrate, create the feed with its wheels, index it, create the user and a feeds:read key; return the key."""
    migrate(data)
    manage(data, "feeds", "create", FEED)
    folder = data / "packages" / FEED
    deps = [f"dep-{number:02d}" for number in range(1, packages)]
    for name in deps:
        wheel(folder, name, "1.0")
        wheel(folder, name, "1.1")
    wheel(folder, "app", "1.0", requires=tuple(deps))
    manage(data, "runindexer", "--once", timeout=300)
    manage(data, "shell", "--no-imports", "-c",
           f"from django.contrib.auth.models import User; User.objects.create_user({USER!r}, password={PASSWORD!r})")
    return manage(data, "apikeys", "create", "uv", "--owner", USER, "--scope", "feeds:read").stdout.strip()


def anonymous_read(data: Path, on: bool) -> None:
    manage(data, "settings", "set", "Feeds.AnonymousRead", "true" if on else "false")


def resolve_command(client: str, index: str, work: Path) -> list[str]:
    """The command that resolves `app` against `index` with `client`, without cache or config."""
    if client == "uv":
        return [str(uv_binary()), "pip", "compile", "-", "--index-url", index, "--no-cache", "--no-config",
                "--python", sys.executable, "--quiet", "--output-file", str(work / "out.txt")]
    return [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--isolated", "--quiet",
            "--no-cache-dir", "--disable-pip-version-check", "--index-url", index, "app"]


def resolve_once(client: str, index: str, work: Path) -> float:
    """Seconds for one resolution of `app` (and its whole tree) against `index`."""
    started = time.perf_counter()
    result = subprocess.run(resolve_command(client, index, work), input="app\n", capture_output=True, text=True,
                            timeout=RESOLVE_TIMEOUT, cwd=work)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{client} failed against {index.split('@')[-1]}:\n{result.stderr}")
    return elapsed


def run(client: str, rounds: int, packages: int) -> dict[str, list[float]]:
    """Every mode's resolution times, `rounds` each, taken in turns after one warm-up each."""
    root = Path(tempfile.mkdtemp(prefix="bench-resolve-"))
    try:
        data = root / "data"
        key = build_feed(data, packages)
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        with daphne_serving(data, log=root / "daphne.log") as base:
            host = base.removeprefix("http://")
            indexes = {"anonymous": f"{base}/pypi/{FEED}/simple/",
                       "key": f"http://api:{key}@{host}/pypi/{FEED}/simple/",
                       "password": f"http://{USER}:{PASSWORD}@{host}/pypi/{FEED}/simple/"}
            for mode in MODES:  # warm-up: the first request of each kind pays imports and connections
                anonymous_read(data, mode == "anonymous")
                resolve_once(client, indexes[mode], root)
            for _ in range(rounds):
                for mode in MODES:
                    anonymous_read(data, mode == "anonymous")
                    times[mode].append(resolve_once(client, indexes[mode], root))
        return times
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--packages", type=int, default=PACKAGES)
    parser.add_argument("--client", choices=("uv", "pip"), default="uv" if uv_binary() else "pip",
                        help="uv pip compile (default when uv is in the venv) or pip install --dry-run")
    parser.add_argument("--check", action="store_true", help="exit 1 when key > 1.2x anonymous")
    args = parser.parse_args()
    if args.client == "uv" and uv_binary() is None:
        parser.error("uv is not installed in the venv: make bench-deps (bench/requirements.txt)")
    times = run(args.client, args.rounds, args.packages)
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    print(f"{args.client}: resolving {args.packages} packages from a private feed, {args.rounds} rounds, "
          f"load average {load_average()}")
    print("| mode | median s | min s | max s | vs anonymous |")
    print("| --- | --- | --- | --- | --- |")
    for mode in MODES:
        values = times[mode]
        print(f"| {mode} | {medians[mode]:.2f} | {min(values):.2f} | {max(values):.2f} | "
              f"{medians[mode] / medians['anonymous']:.2f}x |")
    met = medians["key"] <= TARGET_RATIO * medians["anonymous"]
    print(f"target key <= {TARGET_RATIO}x anonymous: {'met' if met else 'MISSED'}")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
