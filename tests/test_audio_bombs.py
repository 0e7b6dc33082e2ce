"""Crafted songs cannot stall or bloat the server (issue 12, item 1).

The files are made here: an MP3 whose ID3 tag is a mass of tiny TXXX frames
(mutagen's time grows with its square), a FLAC of empty metadata blocks and a
WAV of empty chunks (its memory grows with their number), an Ogg stream
interleaved with empty pages of another stream (mutagen then reads every page),
and an MP3 with one large tag frame (memory, within the tag bounds).
"""

from __future__ import annotations

import os
import threading
import struct
from pathlib import Path

import grpc
import pytest

from musicsync.library.audio_check.checker import AudioChecker
from musicsync.errors import InvalidArgument, ResourceExhausted
from musicsync.proto import auth_pb2, file_pb2
from musicsync.storage.local import LocalBlobStore

from .audio_samples import mp3, opus
from .conftest import PASSWORD
from .helpers import status_of, wait_until
from .transfer import leftovers, stored_blobs, upload, upload_requests

MiB = 1024 * 1024
TOO_COMPLEX = "the file's tags are too large or complex to check"
MP3_FRAMES = (bytes([0xFF, 0xFB, 0x14, 0xC0]) + bytes(92)) * 8  # 4 frames make it MPEG audio


def _syncsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def _id3_frame(name: bytes, body: bytes) -> bytes:
    return name + _syncsafe(len(body)) + b"\0\0" + body


def _id3_tag(frames: bytes) -> bytes:
    return b"ID3\x04\x00\x00" + _syncsafe(len(frames)) + frames


def txxx_bomb(tag_bytes: int) -> bytes:
    """An MP3 whose ID3v2.4 tag is ``tag_bytes`` of 13-byte TXXX frames."""
    frame = _id3_frame(b"TXXX", b"\x00a\x00")
    return _id3_tag(frame * (tag_bytes // len(frame))) + MP3_FRAMES


def big_frame_mp3(frame_bytes: int) -> bytes:
    """An MP3 with one large private frame: within every bound but the memory's."""
    return _id3_tag(_id3_frame(b"PRIV", b"x\x00" + bytes(frame_bytes))) + MP3_FRAMES


def flac_bomb(total: int) -> bytes:
    """A FLAC of ``total`` bytes, nearly all empty APPLICATION metadata blocks."""
    streaminfo = (struct.pack(">HH", 4096, 4096) + bytes(6)
                  + struct.pack(">Q", (8000 << 44) | (15 << 36) | 8000) + bytes(16))
    head = b"fLaC" + bytes([0]) + len(streaminfo).to_bytes(3, "big") + streaminfo
    empties = (total - len(head)) // 4 - 1
    return head + bytes([2, 0, 0, 0]) * empties + bytes([0x81, 0, 0, 0]) + bytes(64)


def wav_bomb(total: int) -> bytes:
    """A WAV of ``total`` bytes, nearly all empty JUNK chunks, then a little PCM."""
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    empties = (total - 12 - len(fmt) - 8 - 16000) // 8
    body = (b"WAVE" + fmt + (b"JUNK" + bytes(4)) * empties
            + b"data" + struct.pack("<I", 16000) + bytes(16000))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def muxed_ogg(total: int) -> bytes:
    """An Opus song with empty pages of another stream inside and after it, ``total`` bytes.

    Within the structure bounds, but mutagen reads every page to find the song's last."""
    song = opus(None).data
    page = b"OggS\x00\x00" + bytes(8) + struct.pack("<I", 0x5EED) + bytes(8) + b"\x00"
    audio = song.index(b"OggS", song.index(b"OggS", 4) + 4)  # after the two header pages
    return song[:audio] + page * ((total - len(song)) // len(page)) + song[audio:] + page


BOMBS = {"mp3_of_tiny_txxx_frames": lambda: txxx_bomb(1 * MiB),
         "flac_of_empty_metadata_blocks": lambda: flac_bomb(16 * MiB),
         "wav_of_empty_chunks": lambda: wav_bomb(16 * MiB)}


def audio_workers() -> list[int]:
    """Process ids of this process's audio check workers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"musicsync.library.audio_check.worker" in command:
            found.append(int(entry.name))
    return found


def _status_bytes(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) * 1024


def reset_peak_rss() -> bool:
    """Resets this process's peak resident memory (VmHWM) to its current size (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@pytest.mark.parametrize("make", BOMBS.values(), ids=BOMBS.keys())
async def test_crafted_songs_are_refused_as_too_complex_without_bloating_the_server(
        client, alice, settings, make):
    bomb = make()
    measured = reset_peak_rss()
    before = _status_bytes("VmRSS") if measured else 0
    code, message = await status_of(upload(client, bomb, file_pb2.FileMetadata(
        filename="bomb.mp3")))
    assert (code, message[:len(TOO_COMPLEX)]) == (grpc.StatusCode.INVALID_ARGUMENT, TOO_COMPLEX)
    assert "remove some tags" in message
    if measured:  # the server runs in this process: its peak, the upload itself included
        assert _status_bytes("VmHWM") - before < 64 * MiB
    assert stored_blobs(settings.data_dir) == [] and leftovers(settings.data_dir) == []


async def test_a_song_with_a_large_cover_and_many_tags_passes(client, alice):
    frames = (_id3_frame(b"TIT2", b"\x03Big cover")
              + b"".join(_id3_frame(b"TXXX", b"\x03key %d\x00value" % i) for i in range(200))
              + _id3_frame(b"APIC", b"\x00image/png\x00\x03\x00" + bytes(12 * MiB)))
    response = await upload(client, _id3_tag(frames) + MP3_FRAMES,
                            file_pb2.FileMetadata(filename="cover.mp3"))
    assert (response.file.title, response.file.codec) == ("Big cover", "mp3")


async def staged_in(tmp_path: Path, data: bytes):
    store = LocalBlobStore(tmp_path / "blobs")
    await store.open()
    staged = await store.stage()
    await staged.write([data])
    return store, staged


async def test_a_check_over_its_time_limit_is_refused_and_its_worker_killed(tmp_path):
    store, staged = await staged_in(tmp_path, muxed_ogg(32 * MiB))
    checker = AudioChecker(seconds=0.3)
    try:
        with pytest.raises(ResourceExhausted, match="could not be checked within 0.3 seconds"):
            await checker.check(staged)
        assert audio_workers() == []
        # The pool is free: the next check gets a new worker.
        await staged.abort()
        store, staged = await staged_in(tmp_path, mp3().data)
        assert (await checker.check(staged)).extension == ".mp3"
    finally:
        await staged.abort()
        await checker.close()
        await store.close()
    assert audio_workers() == []


async def test_a_check_over_its_memory_limit_is_refused_as_too_complex(tmp_path):
    store, staged = await staged_in(tmp_path, big_frame_mp3(15 * MiB))
    checker = AudioChecker(memory_bytes=64 * MiB)
    try:
        with pytest.raises(InvalidArgument, match="need more than 64 MiB of memory"):
            await checker.check(staged)
    finally:
        await staged.abort()
        await checker.close()
        await store.close()
    assert audio_workers() == []


async def test_idle_workers_exit_and_honest_songs_pass(tmp_path):
    store, staged = await staged_in(tmp_path, mp3().data)
    checker = AudioChecker(idle_seconds=0.2)
    try:
        info = await checker.check(staged)
        assert (info.extension, info.tags.codec, info.tags.title) == (".mp3", "mp3",
                                                                      "Señal de prueba")
        await wait_until(lambda: audio_workers() == [], "the idle worker exits")
    finally:
        await staged.abort()
        await checker.close()
        await store.close()


async def test_a_check_cancelled_by_its_client_kills_its_worker(client, alice, settings):
    slow = muxed_ogg(32 * MiB)
    call = client.file.Upload(upload_requests(slow, file_pb2.FileMetadata(filename="x.opus")),
                              metadata=client.meta())
    await wait_until(lambda: audio_workers() != [] or call.done(), "the check starts")
    assert not call.done()
    call.cancel()
    await wait_until(lambda: audio_workers() == [], "the worker is killed")
    await wait_until(lambda: leftovers(settings.data_dir) == [], "the upload is removed")
    # The pool is free: an honest song passes.
    response = await upload(client, mp3().data, file_pb2.FileMetadata(filename="a.mp3"))
    assert response.file.codec == "mp3"


def _received_whole(data_dir: Path, size: int) -> int:
    """How many uploads in progress hold ``size`` bytes (so their check is starting)."""
    count = 0
    for path in leftovers(data_dir):
        try:
            count += path.stat().st_size == size
        except FileNotFoundError:
            pass
    return count


async def test_login_is_prompt_right_after_cancelled_tag_bombs(client, alice, settings):
    bomb = txxx_bomb(4 * MiB)
    calls = [client.file.Upload(upload_requests(bomb, file_pb2.FileMetadata(filename="b.mp3")),
                                metadata=client.meta()) for _ in range(6)]
    await wait_until(lambda: sum(call.done() for call in calls)
                     + _received_whole(settings.data_dir, len(bomb)) >= len(calls),
                     "every bomb is received whole")
    for call in calls:
        call.cancel()
    # Before the fix, the cancelled checks went on for minutes in the thread pool that
    # hashing shared: this Login waited behind them.
    response = await client.auth.Login(auth_pb2.LoginRequest(username="alice",
                                                             password=PASSWORD), timeout=20)
    assert response.token


async def test_hashing_and_blob_io_run_in_thread_pools_of_their_own(client, alice):
    await upload(client, mp3().data, file_pb2.FileMetadata(filename="a.mp3"))
    await client.auth.Login(auth_pb2.LoginRequest(username="alice", password=PASSWORD))
    names = {thread.name.rsplit("_", 1)[0] for thread in threading.enumerate()}
    assert {"argon2", "blob-io", "audio-check"} <= names
