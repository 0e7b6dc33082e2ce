"""The audio check's worker process: ``python -P -m musicsync.library.audio_check.worker MEMORY``.

Started by checker.py, one check at a time. It limits its own address space
to MEMORY bytes (RLIMIT_AS: an allocation past it fails with MemoryError) and
its CPU time to the check's time limit and a second (RLIMIT_CPU, a backstop:
the server kills the worker at the time limit first). It reads the file
through the server, one range at a time, so it needs no access to the store.

It speaks over its stdin and stdout in frames: one kind byte, a 4-byte
big-endian length, then the payload.

    server -> worker   C  a check: JSON {"size", "seconds", "max_chars"}
                       D  the bytes of a read (fewer than asked only at the end)
                       F  that read failed on the server's side: give up this check
    worker -> server   K  ready (once, at start)
                       R  a read: offset (8 bytes) and length (4 bytes), big-endian
                       P  the song's cover picture (at most pictures.MAX_PICTURE_BYTES,
                          checked to be an image: pictures.py), before its answer
                       A  the answer: JSON {"verdict": ..., "retire": bool, ...}

Verdicts: "audio" (with "fields", "extension", and "picture" {"mime_type", "width",
"height"} after a P frame, or "picture_skipped": why the song's picture was left
out), "not_audio", "too_complex"
(with "reason"), "out_of_memory", "read_failed", "error" (a bug; with
"reason"). A worker whose memory grew
past RETIRE_RSS answers "retire": true and exits, returning its memory to the
system; it also exits at the end of its stdin (the server closed it or died).
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import sys
from typing import BinaryIO

from ..ranged import RangedReader

MAX_READ = 4 * 1024 * 1024  # bytes asked for in one read
# Resident memory after which a worker retires once its check is done (an idle
# worker with every parser imported holds about 20 MiB).
RETIRE_RSS = 48 * 1024 * 1024
_HEADER = struct.Struct(">cI")
_READ = struct.Struct(">QI")


class ReadFailed(Exception):
    """The server could not read the file for us: not the file's fault."""


class Channel:
    """Frames over a pair of pipes (used by both sides)."""

    def __init__(self, incoming: BinaryIO, outgoing: BinaryIO) -> None:
        self._in = incoming
        self._out = outgoing

    def send(self, kind: bytes, payload: bytes = b"") -> None:
        self._out.write(_HEADER.pack(kind, len(payload)) + payload)
        self._out.flush()

    def receive(self, max_payload: int) -> tuple[bytes, bytes]:
        """The next frame; EOFError at the end of the stream or past ``max_payload`` bytes."""
        header = self._in.read(_HEADER.size)
        if len(header) < _HEADER.size:
            raise EOFError("the other side closed the pipe")
        kind, length = _HEADER.unpack(header)
        if length > max_payload:
            raise EOFError(f"a frame of {length} bytes (at most {max_payload} expected)")
        payload = self._in.read(length)
        if len(payload) < length:
            raise EOFError("the other side closed the pipe")
        return kind, payload


class RemoteFile(RangedReader):
    """The file under check, read from the server a range at a time."""

    def __init__(self, channel: Channel, size: int) -> None:
        super().__init__(size)
        self._channel = channel

    def _read_at(self, position: int, length: int) -> bytes:
        self._channel.send(b"R", _READ.pack(position, min(length, MAX_READ)))
        kind, data = self._channel.receive(MAX_READ)
        if kind != b"D":
            raise ReadFailed()
        return data


def examine(channel: Channel, request: dict) -> dict:
    """One check: the structure's bounds first, then mutagen."""
    from musicsync.library.audio import parse_audio_and_picture

    from .caps import TooComplex, check_structure

    source = io.BufferedReader(RemoteFile(channel, request["size"]), 64 * 1024)
    try:
        check_structure(source, request["size"])
        parsed = parse_audio_and_picture(source, passthrough=(ReadFailed,))
    except TooComplex as exc:
        return {"verdict": "too_complex", "reason": str(exc)}
    except MemoryError:
        return {"verdict": "out_of_memory", "retire": True}
    except ReadFailed:
        return {"verdict": "read_failed"}
    except Exception as exc:  # noqa: BLE001 - a bug of ours: the server logs it
        return {"verdict": "error", "reason": f"{type(exc).__name__}: {exc}"}
    if parsed is None:
        return {"verdict": "not_audio"}
    fields, extension, picture, skipped = parsed
    limit = request["max_chars"]
    fields = {key: value[:limit] if isinstance(value, str) else value
              for key, value in fields.items()}
    answer = {"verdict": "audio", "fields": fields, "extension": extension}
    if picture is not None:
        answer.update(_offer_picture(channel, *picture))
    elif skipped:
        answer["picture_skipped"] = skipped
    return answer


def _offer_picture(channel: Channel, data: bytes, declared: str) -> dict:
    """Sends a cover picture that is an image of a sane size (a P frame, before the
    answer); what the answer says of it, or why it was left out."""
    from .pictures import NotAPicture, inspect

    try:
        header = inspect(data)
    except NotAPicture as exc:
        return {"picture_skipped": f"{str(exc)} (declared {declared[:40]!r})"}
    channel.send(b"P", data)
    return {"picture": {"mime_type": header.mime_type, "width": header.width,
                        "height": header.height}}


def _limit_cpu(seconds: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + seconds) + 2
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: retire after every check
        return RETIRE_RSS + 1


def main(argv: list[str]) -> int:
    memory = int(argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # The frames get the real stdout; anything printed goes to stderr (the server's log).
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    channel = Channel(sys.stdin.buffer, out)
    channel.send(b"K")
    while True:
        try:
            kind, payload = channel.receive(1 << 16)
        except EOFError:
            return 0
        if kind != b"C":
            continue  # a late answer to a read of a check given up: ignore
        request = json.loads(payload)
        _limit_cpu(request["seconds"])
        answer = examine(channel, request)
        retire = answer.get("retire", False) or _resident_bytes() > RETIRE_RSS
        answer["retire"] = retire
        channel.send(b"A", json.dumps(answer).encode())
        if retire:
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
