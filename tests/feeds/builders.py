"""Package files for the feed tests: valid wheels and sdists (pip installs them) and hostile variants."""
from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path


def metadata_text(name: str, version: str, *, requires_python: str = "", requires: tuple[str, ...] = (),
                  summary: str = "") -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Summary: {summary}"] * bool(summary)
    lines += [f"Requires-Python: {requires_python}"] * bool(requires_python)
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    return ("\n".join(lines) + "\n\n").encode()


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel(folder: Path, name: str, version: str, *, metadata: bytes | None = None, requires_python: str = "",
          requires: tuple[str, ...] = (), extra: dict[str, bytes] | None = None, filename: str | None = None) -> Path:
    """A pure-Python wheel with one module `<name>_mod.py`, complete with WHEEL and RECORD."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    members = {  # the package's files first, .dist-info last, as bdist_wheel writes them
        f"{dist}_mod.py": f"VERSION = {version!r}\n".encode(),
        **(extra or {}),
        f"{info}/METADATA": metadata if metadata is not None else metadata_text(
            name, version, requires_python=requires_python, requires=requires, summary=f"{name} for tests"),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in members.items())
    members[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    path = folder / (filename or f"{dist}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def sdist_tar(folder: Path, name: str, version: str, *, pkg_info: bytes | None = None,
              extra: dict[str, bytes] | None = None, filename: str | None = None) -> Path:
    """A .tar.gz sdist holding `<name>-<version>/PKG-INFO` (plus `extra` members)."""
    top = f"{name.replace('-', '_')}-{version}"
    path = folder / (filename or f"{top}.tar.gz")
    members = {f"{top}/PKG-INFO": pkg_info if pkg_info is not None else metadata_text(name, version), **(extra or {})}
    with tarfile.open(path, "w:gz") as archive:
        for member, data in members.items():
            entry = tarfile.TarInfo(member)
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
    return path


def sdist_zip(folder: Path, name: str, version: str) -> Path:
    top = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{top}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{top}/PKG-INFO", metadata_text(name, version))
        archive.writestr(f"{top}/setup.py", b"")
    return path
