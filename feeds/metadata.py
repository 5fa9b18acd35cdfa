"""Reading a package file's core metadata (wheel METADATA, sdist PKG-INFO) without trusting the file.

Nothing is extracted to disk and only the metadata member is read, within the limits below. Every problem
(hostile, truncated or inconsistent archive) is one MetadataError whose message says what is wrong.
"""
from __future__ import annotations

import gzip
import hashlib
import lzma
import re
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import BinaryIO

from packaging.metadata import InvalidMetadata, Metadata, parse_email
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from feeds.naming import project_normalize

# Real METADATA/PKG-INFO files, long README included, stay far below this; more is refused before reading.
MAX_METADATA_BYTES = 1024 * 1024
# Larger than any real wheel or sdist (big wheels hold tens of thousands of files); bounds the work per file.
MAX_ARCHIVE_MEMBERS = 100_000
# Text and code deflate 3-10x; an archive or member expanding 100x its stored size is a decompression bomb.
MAX_COMPRESSION_RATIO = 100
# Headroom for the ratio test: tiny members and tar's 10 KiB record padding legitimately compress far better.
COMPRESSION_RATIO_SLACK_BYTES = 64 * 1024
# A gzip stream has no index, so finding PKG-INFO means inflating the tar; never inflate more than this.
MAX_SDIST_UNCOMPRESSED_BYTES = 1024 * 1024 * 1024
# The longest text our columns take (PackageFile.version / requires_python).
MAX_VERSION_LENGTH = 128
MAX_REQUIRES_PYTHON_LENGTH = 255
# Read size when inflating a tar.gz: small enough that the ratio test runs often.
INFLATE_CHUNK_BYTES = 64 * 1024

WHEEL_METADATA_RE = re.compile(r"[^/]+\.dist-info/METADATA")


class MetadataError(Exception):
    """The file is not a package we can serve; the message says why, in one line."""


@dataclass(frozen=True, kw_only=True)
class PackageMetadata:
    project: str  # PEP 503 normalised
    version: str
    requires_python: str
    summary: str
    # A wheel's METADATA exactly as stored (served as PEP 658 `<file>.metadata`); empty for sdists, whose PKG-INFO
    # may leave fields to the build (Dynamic) and so is not what an installed distribution would say.
    core_metadata: bytes = field(default=b"", compare=False, repr=False)

    def columns(self) -> dict[str, object]:
        """The PackageFile columns this metadata fills (the core metadata's hash is what the simple API announces)."""
        return {
            "project": self.project, "version": self.version, "requires_python": self.requires_python,
            "summary": self.summary, "core_metadata": self.core_metadata or None,
            "core_metadata_sha256": hashlib.sha256(self.core_metadata).hexdigest() if self.core_metadata else "",
        }


def package_kind(filename: str) -> str | None:
    """"wheel", "sdist" or None (not a package file name we serve)."""
    if filename.endswith(".whl"):
        return "wheel"
    if filename.endswith((".tar.gz", ".zip")):
        return "sdist"
    return None


def filename_parse(filename: str) -> tuple[str, Version]:
    """The normalised project name and the version a package file name declares; raises MetadataError."""
    kind = package_kind(filename)
    try:
        if kind == "wheel":
            name, version, _, _ = parse_wheel_filename(filename)
        elif kind == "sdist":
            name, version = parse_sdist_filename(filename)
        else:
            raise MetadataError("not a Python package file (expected .whl, .tar.gz or .zip)")
    except ValueError as exc:  # InvalidWheelFilename, InvalidSdistFilename, InvalidVersion
        raise MetadataError(f"invalid package file name: {exc}") from None
    return str(name), version


def metadata_read(*, stream: BinaryIO, filename: str) -> PackageMetadata:
    """The core metadata of the package in `stream` (a seekable binary file), checked against `filename`."""
    name, version = filename_parse(filename)
    try:
        if filename.endswith(".tar.gz"):
            data = _pkg_info_from_tar_gz(stream)
        else:
            data = _metadata_from_zip(stream, wheel=filename.endswith(".whl"))
    except MetadataError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, OSError,
            NotImplementedError, RuntimeError, ValueError) as exc:
        # zipfile also raises RuntimeError (an "encrypted" member), ValueError (negative seek from a lying end
        # record; UnicodeDecodeError of a name flagged UTF-8) and lzma.LZMAError: all found by the fuzzer.
        raise MetadataError(f"damaged or truncated archive: {exc}") from None
    metadata = _parse(data, keep=filename.endswith(".whl"))
    if metadata.project != name:
        raise MetadataError(f"file name says project {name!r} but its metadata says {metadata.project!r}")
    if Version(metadata.version) != version:
        raise MetadataError(f"file name says version {version} but its metadata says {metadata.version}")
    return metadata


def _member_name_check(name: str, *, link: str = "") -> None:
    """Refuse member names (and link targets) that would land outside the folder they are unpacked in."""
    for path in (name, link):
        parts = PurePosixPath(path.replace("\\", "/"))
        if parts.is_absolute() or ".." in parts.parts or "\x00" in path or (parts.parts and ":" in parts.parts[0]):
            raise MetadataError(f"unsafe member name {path!r} (path traversal)")


def _ratio_exceeded(*, expanded: int, stored: int) -> bool:
    return expanded > stored * MAX_COMPRESSION_RATIO + COMPRESSION_RATIO_SLACK_BYTES


def _metadata_from_zip(stream: BinaryIO, *, wheel: bool) -> bytes:
    """METADATA (wheel: `*.dist-info/METADATA`) or PKG-INFO (zip sdist: `<top>/PKG-INFO`) from a zip."""
    stream.seek(0, 2)
    archive_size = stream.tell()
    stream.seek(0)
    with zipfile.ZipFile(stream) as archive:
        members = archive.infolist()
        if len(members) > MAX_ARCHIVE_MEMBERS:
            raise MetadataError(f"too many archive members ({len(members)} > {MAX_ARCHIVE_MEMBERS})")
        for info in members:
            _member_name_check(info.filename)
        expanded = sum(info.file_size for info in members)
        if _ratio_exceeded(expanded=expanded, stored=archive_size):
            raise MetadataError(f"zip bomb: {archive_size} bytes expand to {expanded}")
        if wheel:
            found = [info for info in members if WHEEL_METADATA_RE.fullmatch(info.filename)]
        else:
            found = [info for info in members if _is_top_level_pkg_info(info.filename)]
        wanted = "*.dist-info/METADATA" if wheel else "PKG-INFO"
        if len(found) != 1:
            raise MetadataError(f"expected one {wanted}, found {len(found)}")
        info = found[0]
        _size_check(declared=info.file_size, what=info.filename)
        if _ratio_exceeded(expanded=info.file_size, stored=info.compress_size):
            raise MetadataError(f"zip bomb: {info.filename} expands {info.compress_size} bytes to {info.file_size}")
        with archive.open(info) as member:
            return _bounded_read(member, what=info.filename)


def _is_top_level_pkg_info(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and parts[1] == "PKG-INFO"


def _size_check(*, declared: int, what: str) -> None:
    if declared > MAX_METADATA_BYTES:
        raise MetadataError(f"{what} is {declared} bytes; refusing more than {MAX_METADATA_BYTES}")


def _bounded_read(member: BinaryIO, *, what: str) -> bytes:
    """Read at most MAX_METADATA_BYTES, whatever the archive header claimed."""
    data = member.read(MAX_METADATA_BYTES + 1)
    _size_check(declared=len(data), what=what)
    return data


class _InflateGuard:
    """A stream over a gzip stream that fails once it has inflated too much, absolutely or for its input."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._inflated = gzip.GzipFile(fileobj=raw, mode="rb")
        self._produced = 0

    def read(self, size: int = -1) -> bytes:
        data = self._inflated.read(min(size, INFLATE_CHUNK_BYTES) if size >= 0 else INFLATE_CHUNK_BYTES)
        self._produced += len(data)
        if self._produced > MAX_SDIST_UNCOMPRESSED_BYTES:
            raise MetadataError(f"sdist expands to more than {MAX_SDIST_UNCOMPRESSED_BYTES} bytes")
        if _ratio_exceeded(expanded=self._produced, stored=self._raw.tell()):
            raise MetadataError(f"gzip bomb: {self._raw.tell()} bytes expand to more than {self._produced}")
        return data


def _pkg_info_from_tar_gz(stream: BinaryIO) -> bytes:
    """`<top>/PKG-INFO` from a .tar.gz sdist, reading it as a stream (no seeking, nothing extracted)."""
    stream.seek(0)
    found: bytes | None = None
    count = 0
    with tarfile.open(fileobj=_InflateGuard(stream), mode="r|") as archive:
        for member in archive:
            count += 1
            if count > MAX_ARCHIVE_MEMBERS:
                raise MetadataError(f"too many archive members (more than {MAX_ARCHIVE_MEMBERS})")
            _member_name_check(member.name, link=member.linkname)
            if not _is_top_level_pkg_info(member.name):
                continue
            if found is not None:
                raise MetadataError("expected one PKG-INFO, found several")
            if not member.isfile():
                raise MetadataError(f"{member.name} is not a regular file")
            _size_check(declared=member.size, what=member.name)
            extracted = archive.extractfile(member)
            assert extracted is not None  # a regular file always has a body
            found = _bounded_read(extracted, what=member.name)
    if found is None:
        raise MetadataError("expected one PKG-INFO, found 0")
    return found


def _parse(data: bytes, *, keep: bool) -> PackageMetadata:
    """Decode (strict UTF-8) and parse core metadata with `packaging`, validating the fields we serve.

    `keep`: also return `data` itself as the core metadata (wheels).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetadataError(f"metadata is not UTF-8: byte {data[exc.start]:#04x} at offset {exc.start}") from None
    raw, unparsed = parse_email(text)
    for served in ("name", "version", "requires_python", "summary"):
        if served in unparsed:
            raise MetadataError(f"metadata field {served!r} is malformed or repeated")
    try:
        metadata = Metadata.from_raw(raw, validate=False)
        name, version = metadata.name, str(metadata.version)
        requires_python = str(metadata.requires_python or "")
        summary = metadata.summary or ""
    except InvalidMetadata as exc:
        raise MetadataError(f"invalid metadata: {exc}") from None
    if len(version) > MAX_VERSION_LENGTH or len(requires_python) > MAX_REQUIRES_PYTHON_LENGTH:
        raise MetadataError("metadata version or Requires-Python is too long")
    return PackageMetadata(
        project=project_normalize(name), version=version, requires_python=requires_python, summary=summary,
        core_metadata=data if keep else b"",
    )
