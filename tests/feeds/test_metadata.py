"""Reading core metadata from wheels and sdists, and refusing every hostile or inconsistent file with a reason."""
from __future__ import annotations

import io
import random
import tarfile
import zipfile
from pathlib import Path

import pytest

from feeds import metadata as metadata_module
from feeds.metadata import MetadataError, PackageMetadata, metadata_read
from tests.feeds.builders import metadata_text, sdist_tar, sdist_zip, wheel


def read(path: Path) -> PackageMetadata:
    with path.open("rb") as stream:
        return metadata_read(stream=stream, filename=path.name)


def refused(path: Path) -> str:
    with pytest.raises(MetadataError) as caught:
        read(path)
    return str(caught.value)


def test_a_wheel_gives_its_normalised_name_version_requires_python_and_summary(tmp_path: Path) -> None:
    path = wheel(tmp_path, "Pkg.Name", "1.0", requires_python=">=3.8,<4")
    assert read(path) == PackageMetadata(
        project="pkg-name", version="1.0", requires_python="<4,>=3.8", summary="Pkg.Name for tests",
    )


def test_tar_gz_and_zip_sdists_give_their_pkg_info(tmp_path: Path) -> None:
    assert read(sdist_tar(tmp_path, "pkg-a", "2.0")).project == "pkg-a"
    assert read(sdist_zip(tmp_path, "pkg-a", "2.1")).version == "2.1"


def test_the_file_name_must_match_the_metadata(tmp_path: Path) -> None:
    other_name = wheel(tmp_path, "pkg-a", "1.0", metadata=metadata_text("pkg-b", "1.0"))
    assert "metadata says 'pkg-b'" in refused(other_name)
    other_version = sdist_tar(tmp_path, "pkg-a", "1.0", pkg_info=metadata_text("pkg-a", "1.1"))
    assert "metadata says 1.1" in refused(other_version)
    # Case and separators do not matter, nor version spelling.
    assert read(wheel(tmp_path, "pkg-a", "1.0.post1", metadata=metadata_text("PKG_A", "1.0-post1"))).version \
        == "1.0.post1"


def test_file_names_that_are_no_package_or_malformed_are_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    assert "not a Python package file" in refused(tmp_path / "notes.txt")
    (tmp_path / "bad-name-x-y.whl").write_bytes(b"")
    assert "invalid package file name" in refused(tmp_path / "bad-name-x-y.whl")


def test_a_truncated_zip_or_tar_gz_is_refused(tmp_path: Path) -> None:
    for path in (wheel(tmp_path, "pkg-a", "1.0"), sdist_tar(tmp_path, "pkg-a", "1.0")):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        assert "damaged or truncated archive" in refused(path)


def test_a_zip_bomb_metadata_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    bomb = metadata_text("pkg-a", "1.0") + b" " * (900 * 1024)  # 900 KiB of spaces deflate ~1000x
    assert "zip bomb" in refused(wheel(tmp_path, "pkg-a", "1.0", metadata=bomb))


def test_a_zip_bomb_elsewhere_in_the_wheel_is_refused(tmp_path: Path) -> None:
    path = wheel(tmp_path, "pkg-a", "1.0", extra={"pkg_a/zeros.bin": bytes(50 * 1024 * 1024)})
    assert "zip bomb" in refused(path)


def test_a_gzip_bomb_sdist_is_refused(tmp_path: Path) -> None:
    path = sdist_tar(tmp_path, "pkg-a", "1.0", extra={"aaa/zeros.bin": bytes(50 * 1024 * 1024)},
                     filename="pkg_a-1.0.tar.gz")
    assert "gzip bomb" in refused(path)


def test_metadata_of_absurd_size_is_refused_without_reading_it(tmp_path: Path) -> None:
    huge = metadata_text("pkg-a", "1.0") + random.Random(0).randbytes(2 * 1024 * 1024)  # incompressible
    assert "refusing more than 1048576" in refused(wheel(tmp_path, "pkg-a", "1.0", metadata=huge))
    assert "refusing more than 1048576" in refused(sdist_tar(tmp_path, "pkg-a", "1.0", pkg_info=huge))


def test_the_metadata_cap_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata_module, "MAX_METADATA_BYTES", 100)
    at_cap = metadata_text("pkg-a", "1.0").ljust(100, b"\n")
    assert read(sdist_tar(tmp_path, "pkg-a", "1.0", pkg_info=at_cap)).project == "pkg-a"
    assert "refusing more than 100" in refused(sdist_tar(tmp_path, "pkg-a", "1.0", pkg_info=at_cap + b"\n"))
    assert "refusing more than 100" in refused(wheel(tmp_path, "pkg-a", "1.0", metadata=at_cap + b"\n"))


@pytest.mark.parametrize("member", ["../evil.py", "/etc/evil.py", "pkg/../../evil.py", "C:/evil.py", "..\\evil.py"])
def test_path_traversal_member_names_are_refused(tmp_path: Path, member: str) -> None:
    assert "path traversal" in refused(wheel(tmp_path, "pkg-a", "1.0", extra={member: b"x"}))
    assert "path traversal" in refused(sdist_tar(tmp_path, "pkg-a", "1.0", extra={member: b"x"}))


def test_a_tar_link_leading_out_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pkg_a-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        link = tarfile.TarInfo("pkg_a-1.0/link")
        link.type, link.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        archive.addfile(link)
    assert "path traversal" in refused(path)


def test_non_utf8_metadata_is_refused_with_the_offending_byte(tmp_path: Path) -> None:
    latin1 = metadata_text("pkg-a", "1.0", summary="caf\u00e9").decode().encode("latin-1")
    message = refused(wheel(tmp_path, "pkg-a", "1.0", metadata=latin1))
    assert "not UTF-8: byte 0xe9" in message


def test_missing_duplicate_or_invalid_metadata_is_refused(tmp_path: Path) -> None:
    no_metadata = tmp_path / "pkg_a-1.0-py3-none-any.whl"
    with zipfile.ZipFile(no_metadata, "w") as archive:
        archive.writestr("pkg_a.py", "")
    assert "expected one *.dist-info/METADATA, found 0" in refused(no_metadata)
    two = wheel(tmp_path, "pkg-b", "1.0", extra={"other-1.0.dist-info/METADATA": metadata_text("other", "1.0")})
    assert "found 2" in refused(two)
    bad_version = wheel(tmp_path, "pkg-c", "1.0", metadata=b"Metadata-Version: 2.1\nName: pkg-c\nVersion: one\n\n")
    assert "invalid metadata" in refused(bad_version)
    two_names = b"Metadata-Version: 2.1\nName: pkg-d\nName: pkg-e\nVersion: 1.0\n\n"
    assert "'name' is malformed or repeated" in refused(wheel(tmp_path, "pkg-d", "1.0", metadata=two_names))
    bad_python = metadata_text("pkg-f", "1.0", requires_python=">=three")
    assert "invalid metadata" in refused(wheel(tmp_path, "pkg-f", "1.0", metadata=bad_python))


def test_too_many_members_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata_module, "MAX_ARCHIVE_MEMBERS", 3)
    extra = {f"pkg_a/m{i}.py": b"" for i in range(5)}
    assert "too many archive members" in refused(wheel(tmp_path, "pkg-a", "1.0", extra=extra))
    assert "too many archive members" in refused(sdist_tar(tmp_path, "pkg-a", "1.0", extra=extra))


def test_random_bytes_named_like_a_package_are_refused(tmp_path: Path) -> None:
    for name in ("pkg_a-1.0-py3-none-any.whl", "pkg_a-1.0.tar.gz", "pkg_a-1.0.zip"):
        (tmp_path / name).write_bytes(io.BytesIO(b"\x00garbage" * 100).getvalue())
        assert "damaged or truncated archive" in refused(tmp_path / name)
