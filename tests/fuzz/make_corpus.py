"""Write the fuzz seed corpus to fuzz/corpus/ (run: `.venv/bin/python tests/fuzz/make_corpus.py`).

Frames are sealed with the fixed key and nonces of tests/fuzz/support.py, so the valid ones open on
`open_pair()`; packages describe `tiny 1.0`. The files are small (a few hundred bytes each) and committed:
the fuzz tests replay every one of them, and the fuzzers mutate them.

Folders (one per target):
  frames-to-server/   bytes for an OPEN server connection (client->server frames, plus hostile ones)
  frames-to-client/   bytes for an OPEN client connection (server->client frames, plus hostile ones)
  handshake-server/   bytes for a server in HANDSHAKING (ClientHello, a whole client flight, REJECT, junk)
  handshake-client/   bytes for a client that sent its ClientHello (ServerHello, REJECT, a wrong proof)
  envelopes/          plaintext envelopes (sealed by the envelope target)
  packages/           .whl / .tar.gz / .zip files, valid and hostile (the name's extension picks the reader)
"""
from __future__ import annotations

import gzip
import io
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from messenger import crypto  # noqa: E402
from messenger.messages import MESSAGE_TYPES, UNKNOWN_TYPE, Kind, encode_batch, encode_envelope  # noqa: E402
from messenger.protocol import REJECT, Request, StreamItem  # noqa: E402
from tests.feeds.builders import metadata_text  # noqa: E402
from tests.fuzz.support import (  # noqa: E402
    CORPUS,
    PACKAGE_NAME,
    PACKAGE_VERSION,
    client_flight,
    client_hello_head,
    new_server,
    open_pair,
    session_keys,
)

BODY = {"n": 1, "text": "h\u00e9llo \u2603", "big": 2**70, "nested": {"list": [1, 2.5, None, True, "x"]}}
TOP = f"{PACKAGE_NAME}-{PACKAGE_VERSION}"
DIST_INFO = f"{TOP}.dist-info"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def frames() -> dict[str, bytes]:
    client, server = open_pair()
    ping = client.send_request(id=1, type="ping", body={})
    every_type = b"".join(client.send_request(id=i + 2, type=t, body=BODY) for i, t in enumerate(MESSAGE_TYPES))
    controls = client.send_cancel(id=7) + client.send_keepalive() + client.send_keepalive_ack()
    reply = server.send_reply(id=1, body=BODY)
    error = server.send_error(id=2, message="not supported", code=UNKNOWN_TYPE)
    stream = server.send_stream(id=3, body={"i": 0}) + server.send_stream(id=3, body={"i": 1})
    stream += server.send_cancel(id=3)
    keepalives = server.send_keepalive() + server.send_keepalive_ack()
    batch = server.send_batch([StreamItem(id=3, body={"i": i}) for i in range(2, 5)])
    requests = client.send_batch([Request(id=i, type="ping", body={"n": i}) for i in range(20, 23)])
    # An authentic batch record holding no envelope, sealed as the frame after `ping` (counter 1).
    sealer = crypto.Sealer(session_keys().c2s)
    sealer.seal_frame(b"ping")
    empty = sealer.seal_frame(bytes([8, 0, 0, 0, 0, 0]))
    return {
        "frames-to-server/ping.bin": ping,
        "frames-to-server/every-type.bin": ping + every_type,
        "frames-to-server/controls.bin": ping + every_type + controls,
        "frames-to-server/ping-tampered.bin": flip(ping, len(ping) - 1),
        "frames-to-server/ping-truncated.bin": ping[:-3],
        "frames-to-server/replayed.bin": ping + ping,
        "frames-to-server/reflected.bin": reply,
        "frames-to-server/length-huge.bin": b"\xff\xff\xff\xff" + ping[4:],
        "frames-to-server/length-tiny.bin": b"\x00\x00\x00\x01" + ping[4:],
        "frames-to-client/reply.bin": reply,
        "frames-to-client/error.bin": reply + error,
        "frames-to-client/stream.bin": reply + error + stream,
        "frames-to-client/keepalives.bin": reply + error + stream + keepalives,
        "frames-to-client/reject.bin": REJECT,
        "frames-to-client/reflected.bin": ping,
        "frames-to-client/batch.bin": reply + error + stream + keepalives + batch,
        "frames-to-server/batch.bin": ping + every_type + controls + requests,
        "frames-to-server/batch-empty.bin": ping + empty,
    }


def handshakes() -> dict[str, bytes]:
    hello, finish = client_flight()
    hello_v1, finish_v1 = client_flight(version=1)
    client, _ = open_pair()
    ping = client.send_request(id=1, type="ping", body={"n": 1})
    server = new_server()
    server.receive_data(hello)
    server_hello = server.data_to_send()
    return {
        "handshake-server/client-hello.bin": hello,
        "handshake-server/client-flight.bin": hello + finish,
        "handshake-server/client-flight-and-ping.bin": hello + finish + ping,
        "handshake-server/wrong-proof.bin": hello + flip(finish, 0),
        "handshake-server/client-flight-v1.bin": hello_v1 + finish_v1,
        "handshake-server/version-3.bin": client_hello_head()[:4] + b"\x03" + hello[5:],
        "handshake-server/http.bin": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "handshake-server/tls.bin": bytes.fromhex("160301006a0100006603035b"),
        "handshake-server/reject.bin": REJECT,
        "handshake-client/server-hello.bin": server_hello,
        "handshake-client/server-hello-and-reply.bin": server_hello + open_pair()[1].send_reply(id=1, body={}),
        "handshake-client/wrong-proof.bin": flip(server_hello, len(server_hello) - 1),
        "handshake-client/reject.bin": REJECT,
        "handshake-client/version-0.bin": client_hello_head()[:4] + b"\x00" + server_hello[5:],
    }


def envelopes() -> dict[str, bytes]:
    return {
        "envelopes/batch.bin": encode_batch([encode_envelope(Kind.STREAM, 5, None, {"i": 1}),
                                             encode_envelope(Kind.CANCEL, 5, None, None)]),
        "envelopes/request-ping.bin": encode_envelope(Kind.REQUEST, 1, "ping", {}),
        "envelopes/request-body.bin": encode_envelope(Kind.REQUEST, 2, "status.snapshot", BODY),
        "envelopes/reply.bin": encode_envelope(Kind.REPLY, 3, None, BODY),
        "envelopes/error.bin": encode_envelope(Kind.ERROR, 4, None, {"error": "no"}),
        "envelopes/stream.bin": encode_envelope(Kind.STREAM, 5, None, {"i": 1}),
        "envelopes/cancel.bin": encode_envelope(Kind.CANCEL, 6, None, None),
        "envelopes/keepalive.bin": encode_envelope(Kind.KEEPALIVE, 0, None, None),
        "envelopes/keepalive-ack.bin": encode_envelope(Kind.KEEPALIVE_ACK, 0, None, None),
        "envelopes/escapes.bin": bytes([1, 0, 0, 0, 9, 1])
        + b'{"a":"\\u00e9\\ud83d\\ude00","b":[1e5,-0.0,12345678901234567890123]}',
        "envelopes/deep.bin": bytes([2, 0, 0, 0, 9, 0]) + b'{"a":' + b"[" * 200 + b"]" * 200 + b"}",
    }


# --- packages ---


def _zip(members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, ZIP_DATE), data, compress_type=method)
    return out.getvalue()


def _tar_gz(members: dict[str, bytes], *, symlink: tuple[str, str] | None = None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members.items():
            entry = tarfile.TarInfo(name)
            entry.size, entry.mtime = len(data), 0
            archive.addfile(entry, io.BytesIO(data))
        if symlink is not None:
            entry = tarfile.TarInfo(symlink[0])
            entry.type, entry.linkname, entry.mtime = tarfile.SYMTYPE, symlink[1], 0
            archive.addfile(entry)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as packed:
        packed.write(raw.getvalue())
    return out.getvalue()


def _set_zip_flag(data: bytes, flag: int) -> bytes:
    """Set a general-purpose flag bit on every local and central header."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := out.find(signature, start)) >= 0:
            (flags,) = struct.unpack_from("<H", out, start + offset)
            struct.pack_into("<H", out, start + offset, flags | flag)
            start += 4
    return bytes(out)


def packages() -> dict[str, bytes]:
    metadata = metadata_text(PACKAGE_NAME, PACKAGE_VERSION, requires_python=">=3.8", summary="tiny for fuzzing")
    wheel_members = {
        f"{PACKAGE_NAME}_mod.py": b"VERSION = '1.0'\n",
        f"{DIST_INFO}/METADATA": metadata,
        f"{DIST_INFO}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{DIST_INFO}/RECORD": b"",
    }
    wheel = _zip(wheel_members)
    sdist_zip = _zip({f"{TOP}/PKG-INFO": metadata, f"{TOP}/setup.py": b""})
    # METADATA-1: the UTF-8 flag (0x800) on a name that is not UTF-8 (0xff replaces the first byte).
    bad_name = _set_zip_flag(_zip({f"{DIST_INFO}/METADATA": metadata}), 0x800)
    bad_name = bad_name.replace(f"{DIST_INFO}/METADATA".encode(), b"\xff" + f"{DIST_INFO}/METADATA".encode()[1:])
    lzma_zip = _zip({f"{DIST_INFO}/METADATA": metadata}, method=zipfile.ZIP_LZMA)
    body_at = lzma_zip.index(f"{DIST_INFO}/METADATA".encode()) + len(f"{DIST_INFO}/METADATA") + 4
    lzma_corrupt = lzma_zip[:body_at] + bytes(b ^ 0x55 for b in lzma_zip[body_at : body_at + 16]) + lzma_zip[
        body_at + 16 :]
    # METADATA-4: the end record puts the central directory 16 MiB further than it is: zipfile finds it anyway
    # (it corrects by the difference), and every local header offset becomes negative.
    end = wheel.rindex(b"PK\x05\x06")
    (cd_offset,) = struct.unpack_from("<I", wheel, end + 16)
    cd_moved = wheel[: end + 16] + struct.pack("<I", cd_offset + 0x01000000) + wheel[end + 20 :]
    return {
        "packages/wheel-valid.whl": wheel,
        "packages/wheel-cd-offset-past-end.whl": cd_moved,
        "packages/wheel-truncated.whl": wheel[: len(wheel) * 2 // 3],
        "packages/wheel-no-end-record.whl": wheel[: wheel.rindex(b"PK\x05\x06")],
        "packages/wheel-traversal.whl": _zip({**wheel_members, "../../evil.py": b"x = 1\n"}),
        "packages/wheel-two-metadata.whl": _zip({**wheel_members, "other-1.0.dist-info/METADATA": metadata}),
        "packages/wheel-bomb.whl": _zip({f"{DIST_INFO}/METADATA": metadata, "zeros.bin": bytes(1024 * 1024)}),
        "packages/wheel-stored.whl": _zip(wheel_members, method=zipfile.ZIP_STORED),
        "packages/wheel-bzip2.whl": _zip(wheel_members, method=zipfile.ZIP_BZIP2),
        "packages/wheel-utf8-flag-bad-name.whl": bad_name,
        "packages/wheel-encrypted-flag.whl": _set_zip_flag(_zip({f"{DIST_INFO}/METADATA": metadata}), 0x1),
        "packages/wheel-lzma-corrupt.whl": lzma_corrupt,
        "packages/sdist-valid.zip": sdist_zip,
        "packages/sdist-valid.tar.gz": _tar_gz({f"{TOP}/PKG-INFO": metadata, f"{TOP}/setup.py": b""}),
        "packages/sdist-truncated.tar.gz": _tar_gz({f"{TOP}/PKG-INFO": metadata})[:60],
        "packages/sdist-traversal.tar.gz": _tar_gz({f"{TOP}/PKG-INFO": metadata, "../evil": b""}),
        "packages/sdist-symlink.tar.gz": _tar_gz({}, symlink=(f"{TOP}/PKG-INFO", "/etc/passwd")),
        "packages/sdist-bomb.tar.gz": _tar_gz({f"{TOP}/PKG-INFO": metadata, f"{TOP}/zeros": bytes(4 * 1024 * 1024)}),
        "packages/sdist-not-utf8.zip": _zip({f"{TOP}/PKG-INFO": metadata.replace(b"tiny for", b"tiny \xff for")}),
    }


def build() -> dict[str, bytes]:
    """Every seed file, by path relative to fuzz/corpus/."""
    return {**frames(), **handshakes(), **envelopes(), **packages()}


def main() -> None:
    for relative, data in build().items():
        path = CORPUS / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    print(f"wrote {len(build())} seed files under {CORPUS}")


if __name__ == "__main__":
    main()
