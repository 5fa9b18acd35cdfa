"""Checks for the folders an admin configures (Storage.PackagesRootPath, a feed's drop path).

A configured folder is absolute, printable, normalized and of a sane length; the packages root keeps clear of the
node's own files in the data folder (database, secret key, sockets). Raises ValueError with a message for the user.
"""
from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

# A feed folder, a project and a file name go under a configured folder; Linux's PATH_MAX (4096) must fit them.
MAX_CONFIGURED_PATH = 1024
# The data folder's own packages folder: the default packages root, the one place inside the data folder for feeds.
DATA_PACKAGES_FOLDER = "packages"


def configured_path_check(text: str, *, what: str) -> Path:
    """`text` as an absolute, normalized folder path; ValueError (naming `what`) when it is none."""
    if not text.isprintable():
        raise ValueError(f"{what} must not contain NUL bytes or other control characters")
    if len(text) > MAX_CONFIGURED_PATH:
        raise ValueError(f"{what} must be at most {MAX_CONFIGURED_PATH} characters")
    if not os.path.isabs(text):
        raise ValueError(f"{what} must be an absolute path, not {text!r}")
    if any(part in {".", ".."} for part in text.split("/")):
        raise ValueError(f"{what} must not contain '.' or '..' parts: {text!r}")
    path = Path(text)
    if path == Path(path.anchor):
        raise ValueError(f"{what} must not be the file system's root")
    return path


def real(path: Path | str) -> Path:
    """`path` with symbolic links resolved (it need not exist), so two spellings of one folder compare equal."""
    return Path(os.path.realpath(path))


def paths_overlap(first: Path | str, second: Path | str) -> bool:
    """Whether one folder is the other, or inside it (symbolic links resolved)."""
    a, b = real(first), real(second)
    return a.is_relative_to(b) or b.is_relative_to(a)


def data_folder() -> Path:
    """The node's data folder, read lazily (tests and deployments set it per process)."""
    return real(settings.DATA_DIR)


def packages_root_check(text: str) -> Path:
    """The validator of Storage.PackagesRootPath: a configured folder that holds no node file.

    Refused: the data folder itself or any folder containing it (a feed named like one of its entries would be
    stored on it), and any folder inside it but outside its own packages folder.
    """
    path = configured_path_check(text, what="Storage.PackagesRootPath")
    data, root = data_folder(), real(path)
    if data.is_relative_to(root):
        raise ValueError(f"Storage.PackagesRootPath must not be the data folder or contain it ({data})")
    if root.is_relative_to(data) and not root.is_relative_to(data / DATA_PACKAGES_FOLDER):
        raise ValueError("Storage.PackagesRootPath may be inside the data folder only under its "
                         f"{DATA_PACKAGES_FOLDER}/ folder ({data / DATA_PACKAGES_FOLDER})")
    return path
