"""Who is on the other side of the local (Unix socket) messenger: checks made before a byte is exchanged.

Guarantees: the service listens only in a run dir that is a real directory of its own user (never through a
symlink, never in another user's dir); the client talks only to a listener running as its own user.
"""
from __future__ import annotations

import contextlib
import os
import socket
import struct
from pathlib import Path

from messenger.errors import MessengerError

# struct ucred {pid_t pid; uid_t uid; gid_t gid;}: what SO_PEERCRED returns on Linux.
_UCRED = struct.Struct("3i")


def run_dir_secure(run_dir: Path, *, mode: int) -> None:
    """Create `run_dir` with `mode`, or set `mode` on an existing one; MessengerError (one line) if it is a
    symlink, not a directory, or owned by another user, which are then left as they are.

    The checks and the chmod go through one descriptor opened without following symlinks, so the dir
    cannot be swapped between them.
    """
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # it exists: checked below, as a new one would be
        run_dir.mkdir(mode=mode)
    if run_dir.is_symlink():
        raise MessengerError(f"{run_dir} is a symlink; refusing to listen through it (remove it: the service "
                             "creates its own run dir)")
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:  # ENOTDIR, or ELOOP if it became a symlink just now
        raise MessengerError(f"{run_dir} is not a directory; refusing to listen in it") from exc
    try:
        status = os.fstat(fd)
        if status.st_uid != os.geteuid():
            raise MessengerError(f"{run_dir} is owned by uid {status.st_uid}, not by this service's user "
                                 f"(uid {os.geteuid()}); refusing to listen in it")
        os.fchmod(fd, mode)  # it may have existed with looser permissions
    finally:
        os.close(fd)


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket; None for other sockets or without SO_PEERCRED."""
    if sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return None
    _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return uid


def peer_refusal(sock: socket.socket) -> str | None:
    """Why the client must not talk on `sock` (its Unix-socket listener runs as another user), or None."""
    uid = peer_uid(sock)
    if uid is None or uid == os.geteuid():
        return None
    return f"the socket's listener runs as uid {uid}, not as this node's user (uid {os.geteuid()}); nothing was sent"
