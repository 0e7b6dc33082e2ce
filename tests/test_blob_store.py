"""The blob-store contract, one suite run against every backend (local folder, S3).

S3 runs against moto's server on loopback, or the server S3_ENDPOINT names (see
tests/s3server.py). The S3 store uses 5 MiB parts here (S3's smallest), so a
blob of BIG bytes spans two part objects and a tail.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from musicsync.library.audio import read_audio
from musicsync.storage import BlobMissing
from musicsync.storage.local import LocalBlobStore

from .helpers import sha
from .transfer import wav_bytes

PART = 5 * 1024 * 1024
BLOCK = 1024 * 1024
BIG = random.Random(5).randbytes(2 * PART + 12345)


class LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = root

    def new(self) -> LocalBlobStore:
        return LocalBlobStore(self.root)

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in (self.root / ".tmp").glob("*"))


class S3Backend:
    def __init__(self, server, bucket: str) -> None:
        self.server = server
        self.bucket = bucket

    def new(self):
        from musicsync.storage.s3 import S3BlobStore
        return S3BlobStore(self.server.endpoint, self.server.access_key, self.server.secret_key,
                           bucket=self.bucket, timeout=10, part_size=PART, stale_after=0)

    def leftovers(self) -> list[str]:
        """Temporary objects and unfinished multipart uploads."""
        client = self.server.client()
        uploads = [u.object_name for u in client._list_multipart_uploads(self.bucket).uploads]
        return self.server.objects(self.bucket, "tmp/") + uploads


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path: Path):
    if request.param == "local":
        return LocalBackend(tmp_path / "blobs")
    return S3Backend(request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket"))


@pytest.fixture
async def store(backend):
    opened = backend.new()
    await opened.open()
    yield opened
    await opened.close()


async def staged_with(store, data: bytes, expected: str | None = None, batch: int = 256 * 1024):
    staged = await store.stage(expected)
    for start in range(0, len(data), batch):
        await staged.write([data[start:start + batch // 2], data[start + batch // 2:start + batch]])
    return staged


async def put(store, data: bytes) -> str:
    return await (await staged_with(store, data)).commit()


async def read_all(store, sha256: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([block async for block in store.read(sha256, offset, length)])


async def listing(store) -> list[tuple[str, int]]:
    return sorted([entry async for entry in store.blobs()])


async def partials(store) -> set[str]:
    return {upload_id async for upload_id in store.partials()}


# -- Staging, commit, abort ------------------------------------------------------------------

async def test_staged_blob_is_invisible_until_committed(store, backend):
    staged = await staged_with(store, BIG)
    assert staged.size == len(BIG)
    assert staged.hexdigest() == sha(BIG)
    assert await store.size(sha(BIG)) is None
    assert await listing(store) == []

    assert await staged.commit() == sha(BIG)
    assert await store.size(sha(BIG)) == len(BIG)
    assert await read_all(store, sha(BIG)) == BIG
    assert await listing(store) == [(sha(BIG), len(BIG))]
    assert backend.leftovers() == []


async def test_a_staged_blob_takes_no_file_until_its_first_bytes(store, backend):
    """An Upload stream that sends nothing must hold no file descriptor: 1,100 idle
    streams once used up the server's 1,024 (issue 12)."""
    open_files = len(os.listdir("/proc/self/fd"))
    idle = [await store.stage() for _ in range(50)]
    assert len(os.listdir("/proc/self/fd")) < open_files + 5
    assert backend.leftovers() == []
    await idle[0].write([b"first bytes"])
    assert (await idle[0].commit()) == sha(b"first bytes")
    for staged in idle:
        await staged.abort()
    assert backend.leftovers() == []
    assert await read_all(store, sha(b"first bytes")) == b"first bytes"


async def test_abort_after_commit_keeps_the_blob(store):
    staged = await staged_with(store, BIG)
    await staged.commit()
    await staged.abort()
    assert await read_all(store, sha(BIG)) == BIG


async def test_small_and_empty_blobs_are_published(store, backend):
    small = b"tiny song" * 100
    assert await put(store, small) == sha(small)
    assert await put(store, b"") == sha(b"")
    assert await read_all(store, sha(small)) == small
    assert await read_all(store, sha(b"")) == b""
    assert await listing(store) == sorted([(sha(small), len(small)), (sha(b""), 0)])
    assert backend.leftovers() == []


async def test_commit_of_existing_content_drops_the_copy(store, backend):
    await put(store, BIG)
    assert await put(store, BIG) == sha(BIG)
    assert await listing(store) == [(sha(BIG), len(BIG))]
    assert await read_all(store, sha(BIG)) == BIG
    assert backend.leftovers() == []


async def test_abort_removes_every_byte(store, backend):
    staged = await staged_with(store, BIG)
    await staged.flush()
    await staged.abort()
    await staged.abort()  # twice is fine
    assert await listing(store) == []
    assert await store.size(sha(BIG)) is None
    assert backend.leftovers() == []


async def test_declared_hash_mismatch_leaves_nothing(store, backend):
    declared = sha(b"the song the client meant")
    staged = await staged_with(store, BIG, expected=declared)
    assert staged.hexdigest() != declared  # what the caller checks before publishing
    await staged.abort()
    assert await store.size(declared) is None
    assert await store.size(sha(BIG)) is None
    assert await listing(store) == []
    assert backend.leftovers() == []


async def test_declared_hash_that_matches_is_published(store, backend):
    staged = await staged_with(store, BIG, expected=sha(BIG))
    assert await staged.commit() == sha(BIG)
    assert await read_all(store, sha(BIG)) == BIG
    assert backend.leftovers() == []


# -- Reading, listing, deleting ---------------------------------------------------------------

async def test_ranged_reads_return_exactly_the_range(store):
    await put(store, BIG)
    for offset, length in [(0, None), (1, 10), (PART - 5, 10), (2 * BLOCK + 3, BLOCK + 7),
                           (len(BIG) - 3, None), (len(BIG) - 3, 100), (len(BIG), None)]:
        end = len(BIG) if length is None else offset + length
        assert await read_all(store, sha(BIG), offset, length) == BIG[offset:end], (offset, length)


async def test_reads_come_in_blocks_of_about_a_mebibyte(store):
    await put(store, BIG)
    blocks = [block async for block in store.read(sha(BIG))]
    assert len(blocks) > 1
    assert max(len(block) for block in blocks) <= BLOCK


async def test_reading_a_missing_blob_raises_blob_missing(store):
    missing = sha(b"never stored")
    assert await store.size(missing) is None
    with pytest.raises(BlobMissing):
        await read_all(store, missing)
    with pytest.raises(BlobMissing):
        await read_all(store, missing, 10, 5)


async def test_delete_is_idempotent(store):
    await put(store, BIG)
    await store.delete(sha(BIG))
    await store.delete(sha(BIG))
    await store.delete(sha(b"never stored"))
    assert await store.size(sha(BIG)) is None
    assert await listing(store) == []


async def test_blobs_lists_every_committed_blob_and_nothing_else(store):
    songs = [b"one" * 1000, b"two" * 2000, BIG]
    for song in songs:
        await put(store, song)
    pending = await staged_with(store, b"not committed" * 100)
    await pending.flush()
    assert await listing(store) == sorted((sha(song), len(song)) for song in songs)
    await pending.abort()


# -- Partials of resumable uploads ---------------------------------------------------------------

async def test_resume_continues_a_suspended_partial(store, backend):
    first, rest = BIG[:PART + 100], BIG[PART + 100:]
    staged = await store.resume("upload-1", 0)
    assert staged.size == 0
    await staged.write([first])
    assert await staged.suspend() == len(first)
    assert await partials(store) == {"upload-1"}

    resumed = await store.resume("upload-1", len(first))
    assert resumed.size == len(first)
    assert resumed.hexdigest() == sha(first)  # what was kept is hashed again
    await resumed.write([rest])
    assert await resumed.commit() == sha(BIG)
    assert await read_all(store, sha(BIG)) == BIG
    assert await partials(store) == set()
    assert backend.leftovers() == []


@pytest.mark.parametrize("cut", [PART - 10, PART, PART + 100])
async def test_resume_drops_bytes_past_the_committed_offset(store, cut):
    staged = await store.resume("upload-2", 0)
    await staged.write([BIG[:cut]])
    assert await staged.flush() == cut
    await staged.write([b"bytes never recorded as committed" * 1000])
    await staged.suspend()

    resumed = await store.resume("upload-2", cut)
    assert resumed.hexdigest() == sha(BIG[:cut])
    await resumed.write([BIG[cut:]])
    assert await resumed.commit() == sha(BIG)
    assert await read_all(store, sha(BIG)) == BIG


@pytest.mark.parametrize("written", [0, 1000, PART, PART + 100, 2 * PART + 5])
async def test_partial_size_counts_every_byte_a_partial_keeps(store, written):
    staged = await store.resume("upload-5", 0)
    await staged.write([BIG[:written]])
    await staged.suspend()
    assert await store.partial_size("upload-5") == written
    assert await store.partial_size("never-started") == 0

    resumed = await store.resume("upload-5", written)  # all of it can be taken up
    assert resumed.hexdigest() == sha(BIG[:written])
    await resumed.write([BIG[written:]])
    assert await resumed.commit() == sha(BIG)


@pytest.mark.parametrize("cut", [100, PART - 10, PART + 100])
async def test_a_partial_cut_back_by_resume_holds_only_the_bytes_kept(store, cut):
    staged = await store.resume("upload-6", 0)
    await staged.write([BIG[:PART + 2000]])
    await staged.suspend()
    await (await store.resume("upload-6", cut)).suspend()
    assert await store.partial_size("upload-6") == cut
    resumed = await store.resume("upload-6", cut)
    await resumed.write([BIG[cut:]])
    assert await resumed.commit() == sha(BIG)


@pytest.mark.parametrize("size", [1000, PART + 100])
async def test_a_blob_flushed_just_before_its_commit_is_published_whole(store, size):
    # A resumable upload's complete file is flushed (and recorded) before its commit.
    staged = await store.resume("upload-7", 0)
    await staged.write([BIG[:size]])
    assert await staged.flush() == size
    assert await staged.commit() == sha(BIG[:size])
    assert await read_all(store, sha(BIG[:size])) == BIG[:size]
    assert await partials(store) == set()


async def test_resume_of_more_than_the_partial_holds_raises_blob_missing(store):
    staged = await store.resume("upload-3", 0)
    await staged.write([b"x" * 1000])
    await staged.suspend()
    with pytest.raises(BlobMissing):
        await store.resume("upload-3", 5000)
    with pytest.raises(BlobMissing):
        await store.resume("never-started", 10)


async def test_abort_of_a_resumed_partial_removes_it(store, backend):
    staged = await store.resume("upload-4", 0)
    await staged.write([BIG[:PART + 5]])
    await staged.suspend()
    resumed = await store.resume("upload-4", PART + 5)
    await resumed.abort()
    assert await partials(store) == set()
    assert await listing(store) == []


async def test_drop_partial_removes_only_that_partial(store):
    for upload_id in ("keep-me", "drop-me"):
        staged = await store.resume(upload_id, 0)
        await staged.write([BIG[:PART + 1]])
        await staged.suspend()
    assert await partials(store) == {"keep-me", "drop-me"}
    await store.drop_partial("drop-me")
    await store.drop_partial("drop-me")  # idempotent
    await store.drop_partial("never-started")
    assert await partials(store) == {"keep-me"}
    resumed = await store.resume("keep-me", PART + 1)
    assert resumed.hexdigest() == sha(BIG[:PART + 1])
    await resumed.abort()


# -- Random access for the audio check; cleaning up ------------------------------------------

async def test_reader_gives_random_access_to_the_staged_bytes(store):
    staged = await staged_with(store, BIG)
    with staged.open_reader() as reader:
        assert reader.read(10) == BIG[:10]
        for position, size in [(PART - 3, 10), (2 * PART + 5, 100), (7, 3), (BLOCK * 3, BLOCK)]:
            reader.seek(position)
            assert reader.read(size) == BIG[position:position + size]
            assert reader.tell() == position + size
        reader.seek(-7, 2)
        assert reader.read() == BIG[-7:]
        assert reader.seek(0, 2) == len(BIG)
        assert reader.read(5) == b""
    await staged.abort()


async def test_audio_of_a_staged_song_is_read_before_commit(store):
    song = wav_bytes(seconds=400, salt=b"long")  # over a part: the header is in a part object
    assert len(song) > PART
    staged = await staged_with(store, song)
    with staged.open_reader() as reader:
        info = read_audio(reader)
    assert info is not None and info.extension == ".wav"
    assert info.tags.duration_ms == 400_000
    await staged.abort()


async def test_open_removes_temporary_data_but_keeps_partials(store, backend):
    crashed = await staged_with(store, BIG)
    await crashed.flush()
    partial = await store.resume("survivor", 0)
    await partial.write([BIG[:PART + 3]])
    await partial.suspend()

    restarted = backend.new()
    await restarted.open()
    try:
        assert backend.leftovers() == []
        assert await partials(restarted) == {"survivor"}
        resumed = await restarted.resume("survivor", PART + 3)
        assert resumed.hexdigest() == sha(BIG[:PART + 3])
        await resumed.abort()
    finally:
        await restarted.close()


# -- Memoryview chunks; the local store's write-behind ----------------------------------------

async def test_chunks_may_be_memoryviews(store, backend):
    # Upload chunks reach the store as views of the received messages (services/wire.py).
    view = memoryview(BIG)
    staged = await store.stage()
    for start in range(0, len(BIG), 3 * BLOCK):
        await staged.write([view[start:start + BLOCK], view[start + BLOCK:start + 3 * BLOCK]])
    assert await staged.commit() == sha(BIG)
    assert await read_all(store, sha(BIG)) == BIG
    assert backend.leftovers() == []


@pytest.fixture
def small_write_behind(monkeypatch):
    """Many write-behind windows in a 10 MiB blob, so that each step overlaps writes."""
    monkeypatch.setattr("musicsync.storage.local.WRITE_BEHIND", 64 * 1024)


async def test_write_behind_keeps_every_byte_in_order(tmp_path, small_write_behind):
    store = LocalBlobStore(tmp_path / "blobs")
    await store.open()
    staged = await staged_with(store, BIG, batch=48 * 1024)
    assert staged.size == len(BIG)
    assert await staged.commit() == sha(BIG)
    assert await read_all(store, sha(BIG)) == BIG


async def test_write_behind_of_a_resumable_upload_keeps_its_partial(tmp_path, small_write_behind):
    store = LocalBlobStore(tmp_path / "blobs")
    await store.open()
    staged = await store.resume("windows", 0)
    for start in range(0, PART, 100_000):
        await staged.write([BIG[start:min(start + 100_000, PART)]])
    assert await staged.suspend() == PART
    resumed = await store.resume("windows", PART)
    assert resumed.hexdigest() == sha(BIG[:PART])
    await resumed.write([BIG[PART:]])
    assert await resumed.commit() == sha(BIG)
    assert await read_all(store, sha(BIG)) == BIG


async def test_abort_during_write_behind_removes_every_byte(tmp_path, small_write_behind):
    backend = LocalBackend(tmp_path / "blobs")
    store = backend.new()
    await store.open()
    staged = await store.stage()
    await staged.write([BIG[:3 * BLOCK]])  # starts a write-behind step in a thread
    await staged.abort()  # waits for it before the file goes
    assert backend.leftovers() == []
    assert await listing(store) == []


def evict_from_page_cache(path: Path, start: int = 0) -> None:
    """Drops a file's clean pages from [start, end) out of the page cache, so reads go to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, start, 0, os.POSIX_FADV_DONTNEED)
        try:
            os.preadv(fd, [bytearray(1)], start, os.RWF_NOWAIT)
        except BlockingIOError:
            return  # evicted: the kernel would have to wait for the disk
        pytest.skip("this file system keeps the file in memory; no disk reads to test")
    finally:
        os.close(fd)


@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="Linux page-cache reads only")
@pytest.mark.parametrize("evicted_from", [0, 3 * BLOCK])
async def test_blobs_read_from_the_disk_or_the_page_cache_alike(tmp_path, evicted_from):
    store = LocalBlobStore(tmp_path / "blobs")
    await store.open()
    await put(store, BIG)
    for offset, length in [(0, None), (1, 10), (2 * BLOCK + 3, 3 * BLOCK + 7),
                           (len(BIG) - 3, None), (len(BIG), None)]:
        evict_from_page_cache(store.path_of(sha(BIG)), evicted_from)
        end = len(BIG) if length is None else offset + length
        assert await read_all(store, sha(BIG), offset, length) == BIG[offset:end], (offset, length)


async def test_published_tells_whether_the_commit_happened(store):
    staged = await staged_with(store, BIG)
    assert not staged.published
    await staged.commit()
    assert staged.published
    aborted = await staged_with(store, b"never published")
    await aborted.abort()
    assert not aborted.published
