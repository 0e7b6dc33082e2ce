"""What only the S3 store does: failing fast and by name, staying small, cleaning with care.

The contract shared with the local store is in test_blob_store.py.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest

from musicsync.library.audio import read_audio
from musicsync.errors import StorageUnavailable
from musicsync.metrics import Metrics
from musicsync.storage.s3 import S3BlobStore

from .helpers import free_port
from .s3server import SilentListener
from .transfer import wav_bytes

PART = 5 * 1024 * 1024
DATA = random.Random(3).randbytes(2 * PART + 777)


def s3_store(server, bucket: str, **options) -> S3BlobStore:
    options = {"timeout": 10, "part_size": PART, **options}
    return S3BlobStore(server.endpoint, server.access_key, server.secret_key, bucket=bucket,
                       **options)


def storage_errors(metrics: Metrics) -> str:
    text = metrics.render()[0].decode()
    return "\n".join(line for line in text.splitlines()
                     if line.startswith("musicsync_storage_errors_total"))


async def test_refused_connections_raise_storage_unavailable_naming_the_bucket():
    metrics = Metrics()
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there
    store = S3BlobStore(endpoint, "key", "secret", bucket="songs", timeout=5, metrics=metrics)
    try:
        for attempt in (store.open(), store.check(), store.size("a" * 64), store.delete("a" * 64)):
            with pytest.raises(StorageUnavailable, match=f"S3 bucket songs at {endpoint}"):
                await attempt
        with pytest.raises(StorageUnavailable):
            async for _ in store.read("a" * 64):
                pass
        staged = await store.stage()
        with pytest.raises(StorageUnavailable):
            await staged.write([DATA])  # more than a part: it must be stored
        await staged.abort()  # cannot reach the store either, and says so only in the log
    finally:
        await store.close()
    assert 'operation="open"' in storage_errors(metrics)
    assert 'operation="write"' in storage_errors(metrics)


async def test_a_store_that_never_answers_times_out():
    listener = SilentListener()
    store = S3BlobStore(f"127.0.0.1:{listener.port}", "key", "secret", timeout=1)
    try:
        with pytest.raises(StorageUnavailable, match="did not answer within 1 seconds"):
            await store.check()
    finally:
        await store.close()
        listener.close()


async def test_storage_failure_under_the_audio_check_is_not_called_bad_audio(s3_server,
                                                                             s3_bucket):
    store = s3_store(s3_server, s3_bucket)
    await store.open()
    try:
        song = wav_bytes(400, salt=b"vanishing")  # its header lies in the first part object
        staged = await store.stage()
        await staged.write([song[i:i + PART] for i in range(0, len(song), PART)])
        s3_server.client().remove_object(s3_bucket, s3_server.objects(s3_bucket, "tmp/")[0])
        with staged.open_reader() as reader, pytest.raises(StorageUnavailable):
            read_audio(reader)
        await staged.abort()
    finally:
        await store.close()


async def test_open_keeps_temporary_data_of_uploads_still_running(s3_server, s3_bucket):
    # Another process (fsck) opening the bucket must not break this upload.
    store = s3_store(s3_server, s3_bucket)
    await store.open()
    staged = await store.stage()
    await staged.write([DATA])
    other = s3_store(s3_server, s3_bucket)
    await other.open()
    await other.close()
    assert s3_server.objects(s3_bucket, "tmp/")
    assert await staged.commit()
    assert s3_server.objects(s3_bucket, "tmp/") == []
    await store.close()


async def test_a_staged_blob_holds_at_most_about_one_part_in_memory(s3_server, s3_bucket):
    store = s3_store(s3_server, s3_bucket)
    await store.open()
    try:
        song = DATA * 2  # four parts and a bit
        staged = await store.stage()
        tracemalloc.start()
        try:
            for start in range(0, len(song), 256 * 1024):
                await staged.write([song[start:start + 256 * 1024]])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 2 * PART, f"peak {peak} bytes while writing {len(song)}"
        await staged.abort()
    finally:
        await store.close()
