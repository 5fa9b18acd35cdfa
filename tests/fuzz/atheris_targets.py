"""Coverage-guided fuzzing of the same targets with atheris (libFuzzer), seeded from fuzz/corpus/.

    .venv/bin/python tests/fuzz/atheris_targets.py TARGET [libFuzzer flags, e.g. -atheris_runs=100000 -max_len=4096]

TARGET is one of: frames-to-server, frames-to-client, handshake-server, handshake-client, envelope-to-server,
envelope-to-client, metadata-whl, metadata-tar.gz, metadata-zip. New inputs libFuzzer finds go to a temporary
folder (printed), never into fuzz/corpus/; a crash is written to ./crash-* as usual.

Needs `atheris` (pip install atheris; 3.0.0 works on CPython 3.11 here). Not part of the pytest run: the
hypothesis tests in test_fuzz_targets.py run the same targets in CI.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

import atheris  # noqa: E402

with atheris.instrument_imports(include=["messenger", "feeds", "zipfile", "tarfile", "gzip", "packaging"]):
    from messenger.protocol import Role
    from tests.fuzz import targets
    from tests.fuzz.support import CORPUS

TARGETS = {
    "frames-to-server": ("frames-to-server", lambda data: targets.frames_open(data, receiver=Role.SERVER)),
    "frames-to-client": ("frames-to-client", lambda data: targets.frames_open(data, receiver=Role.CLIENT)),
    "handshake-server": ("handshake-server", targets.server_handshaking),
    "handshake-client": ("handshake-client", targets.client_handshaking),
    "envelope-to-server": ("envelopes", lambda data: targets.sealed_envelope(data, receiver=Role.SERVER)),
    "envelope-to-client": ("envelopes", lambda data: targets.sealed_envelope(data, receiver=Role.CLIENT)),
    "metadata-whl": ("packages", lambda data: targets.package_metadata(data, kind="whl")),
    "metadata-tar.gz": ("packages", lambda data: targets.package_metadata(data, kind="tar.gz")),
    "metadata-zip": ("packages", lambda data: targets.package_metadata(data, kind="zip")),
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags]")
    name = sys.argv[1]
    folder, target = TARGETS[name]

    def test_one_input(data: bytes) -> None:
        target(data)

    found = tempfile.mkdtemp(prefix=f"proget-atheris-{name}-")
    print(f"atheris: target {name}; new inputs go to {found}; seeds from {CORPUS / folder}", file=sys.stderr)
    flags = [arg for arg in sys.argv[2:] if arg.startswith("-")]
    atheris.Setup([sys.argv[0], *flags, found, str(CORPUS / folder)], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
