"""Every accepted audio format over the wire: accepted, hashed, and its tags read on the server.

The songs come from tests/audio_samples.py (built in pure Python, tagged by
mutagen). Uploads carry at most a filename, as the phone sends them, unless a
test is about the tags a client sends.
"""

from __future__ import annotations

import hashlib
import random
import struct
import subprocess
import sys

import grpc
import pytest
from mutagen.aac import AAC
from mutagen.asf import ASF
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from musicsync.proto import file_pb2

from .audio_samples import TAGS, VIDEO_STREAM, m4a, mp3, samples, wav_riff_info, wma
from .helpers import status_of
from .transfer import download, leftovers, stored_blobs, upload

TAGGED = samples()
UNTAGGED = samples(None)
IDS = [sample.format for sample in TAGGED]
EXTENSIONS = {"mp3": ".mp3", "flac": ".flac", "wav": ".wav", "vorbis": ".ogg", "opus": ".opus",
              "m4a": ".m4a", "wma": ".wma", "aac": ".aac"}
PARSERS = {"mp3": MP3, "flac": FLAC, "wav": WAVE, "vorbis": OggVorbis, "opus": OggOpus,
           "m4a": MP4, "wma": ASF, "aac": AAC}
# mutagen estimates the length of raw AAC from its frame sizes (997 ms for 998.4).
DURATION_SLACK_MS = 5


def tags_of(entry: file_pb2.FileEntry) -> dict:
    return {key: getattr(entry, key) for key in TAGS}


async def stat(client, sha256: str) -> file_pb2.FileEntry:
    response = await client.file.Stat(file_pb2.StatRequest(hashes=[sha256]),
                                      metadata=client.meta())
    assert list(response.missing) == []
    [entry] = response.files
    return entry


def assert_stream(entry: file_pb2.FileEntry, sample) -> None:
    """The codec and stream properties the server read match what the sample holds."""
    assert (entry.codec, entry.sample_rate, entry.channels, entry.size) == (
        sample.codec, sample.sample_rate, sample.channels, len(sample.data))
    assert abs(entry.duration_ms - sample.duration_ms) <= DURATION_SLACK_MS
    assert entry.duration == round(entry.duration_ms / 1000)
    assert entry.bitrate > 0


@pytest.mark.parametrize("sample", TAGGED, ids=IDS)
def test_each_sample_is_what_mutagen_says_it_is(sample, tmp_path):
    # The samples themselves, checked with mutagen's parser for their format alone.
    path = tmp_path / sample.filename
    path.write_bytes(sample.data)
    audio = PARSERS[sample.format](path)
    assert 500 < len(sample.data) < 8000
    assert (audio.info.channels, getattr(audio.info, "sample_rate", 48000)) == (
        sample.channels, sample.sample_rate)
    assert abs(audio.info.length * 1000 - sample.duration_ms) <= DURATION_SLACK_MS


@pytest.mark.parametrize("sample", TAGGED, ids=IDS)
async def test_each_format_is_accepted_with_its_tags_and_stream_read_on_the_server(
        client, alice, sample, settings):
    response = await upload(client, sample.data, file_pb2.FileMetadata(filename=sample.filename))
    assert response.hash == hashlib.sha256(sample.data).hexdigest()
    entry = await stat(client, response.hash)
    assert entry == response.file
    assert entry.filename == sample.filename
    assert tags_of(entry) == TAGS
    assert_stream(entry, sample)
    assert (await download(client, response.hash))[0] == sample.data
    assert len(stored_blobs(settings.data_dir)) == 1


@pytest.mark.parametrize("sample", TAGGED, ids=IDS)
async def test_tagged_file_sent_without_metadata_is_named_artist_dash_title(
        client, alice, sample):
    response = await upload(client, sample.data)
    assert response.file.filename == (f"{TAGS['artist']} - {TAGS['title']}"
                                      f"{EXTENSIONS[sample.format]}")
    assert tags_of(response.file) == TAGS


@pytest.mark.parametrize("sample", UNTAGGED, ids=IDS)
async def test_untagged_file_keeps_its_stream_properties_and_is_named_after_its_hash(
        client, alice, sample):
    response = await upload(client, sample.data)
    entry = await stat(client, response.hash)
    assert entry.filename == response.hash[:16] + EXTENSIONS[sample.format]
    assert tags_of(entry) == dict.fromkeys(TAGS, "") | dict(track=0, disc=0, year=0)
    assert_stream(entry, sample)


@pytest.mark.parametrize("sample", TAGGED, ids=IDS)
async def test_non_empty_tags_from_the_client_win_and_empty_ones_leave_the_files(
        client, alice, sample):
    sent = dict(title="Phone title", album_artist="Phone album artist", track=9, year=1999)
    response = await upload(client, sample.data, file_pb2.FileMetadata(
        filename=sample.filename, artist="", album="", genre="", disc=0, **sent))
    entry = await stat(client, response.hash)
    assert tags_of(entry) == TAGS | sent
    assert_stream(entry, sample)  # stream properties always come from the file


async def test_every_format_is_recognised_when_its_first_bytes_arrive_in_tiny_chunks(
        client, alice):
    # The server sniffs the first 16 bytes before the rest arrives; here they come
    # in pieces of 1, 2, 5 and 9 bytes.
    for sample in TAGGED:
        cuts = [0, 1, 3, 8, 17, len(sample.data)]
        requests = [file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(
            filename=sample.filename))]
        requests += [file_pb2.UploadRequest(chunk=sample.data[start:end])
                     for start, end in zip(cuts, cuts[1:])]
        response = await client.file.Upload(iter(requests), metadata=client.meta())
        assert (response.file.codec, tags_of(response.file)) == (sample.codec, TAGS), sample.format


async def test_wav_tags_are_read_from_a_riff_info_list(client, alice):
    sample = wav_riff_info()
    response = await upload(client, sample.data, file_pb2.FileMetadata(filename="info.wav"))
    # RIFF INFO has no album artist or disc number.
    assert tags_of(response.file) == TAGS | dict(album_artist="", disc=0)
    assert_stream(response.file, sample)


async def test_flac_behind_an_id3_tag_is_accepted_with_its_vorbis_comments(client, alice):
    flac = next(sample for sample in TAGGED if sample.format == "flac")
    id3 = id3_tag(TAGS | dict(title="Title in the ID3 tag"))
    response = await upload(client, id3 + flac.data, file_pb2.FileMetadata(filename="a.flac"))
    assert (response.file.codec, tags_of(response.file)) == ("flac", TAGS)


async def test_id3v1_genre_numbers_are_read_as_genre_names(client, alice):
    response = await upload(client, mp3(TAGS | dict(genre="(17)")).data)
    assert response.file.genre == "Rock"


async def test_mp3_inside_an_mp4_container_is_labelled_mp3(client, alice):
    response = await upload(client, m4a(object_type=0x6B).data)
    assert (response.file.codec, response.file.filename[-4:]) == ("mp3", ".m4a")


async def test_stream_properties_beyond_the_wires_range_are_reported_as_unknown(client, alice):
    # A damaged header can claim a rate no int32 field holds; that is 0 (unknown), not a crash.
    response = await upload(client, wma(rate=2**32 - 1).data)
    assert (response.file.sample_rate, response.file.channels) == (0, 2)


def id3_tag(tags: dict) -> bytes:
    """An ID3v2 tag on its own (cut from the front of an MP3 sample)."""
    data = mp3(tags).data
    return data[:data.index(b"\xff\xfb")]


def _png() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + bytes(4)


TEXT = b"These are not the songs you are looking for.\n" * 40
NOT_AUDIO = {
    "png_image": ("cover.png", _png() + bytes(200)),
    "text_named_mp3": ("notes.mp3", TEXT),
    "random_bytes": ("noise.flac", bytes([0x42]) + random.Random(7).randbytes(8191)),
    "id3_tag_then_text": ("song.mp3", id3_tag(TAGS) + TEXT),
    "mpeg_sync_then_noise": ("song.mp3", b"\xff\xfb\x90\x64" + random.Random(8).randbytes(65536)),
    "three_mpeg_frames": ("short.mp3", mp3(None, frames=3).data),
    "adts_sync_then_text": ("song.aac", b"\xff\xf1\x50\x80" + TEXT),
    "flac_magic_then_text": ("song.flac", b"fLaC" + TEXT),
    "ogg_magic_then_text": ("song.ogg", b"OggS" + TEXT),
    "riff_wave_then_text": ("song.wav", b"RIFF" + struct.pack("<I", 4 + len(TEXT)) + b"WAVE"
                            + TEXT),
    "ftyp_then_text": ("song.m4a", b"\x00\x00\x00\x14ftypM4A \x00\x00\x00\x00M4A " + TEXT),
    "asf_guid_then_text": ("song.wma", bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c") + TEXT),
    "mp4_without_sound_track": ("clip.m4a", m4a(handler=b"vide").data),
    "asf_without_audio_stream": ("clip.wma", wma(stream_type=VIDEO_STREAM).data),
    **{f"{sample.format}_cut_inside_its_header": (sample.filename, sample.data[:30])
       for sample in TAGGED},
}


@pytest.mark.parametrize("filename, data", NOT_AUDIO.values(), ids=NOT_AUDIO)
async def test_non_audio_is_refused_as_not_a_supported_audio_file_and_nothing_is_kept(
        client, alice, settings, filename, data):
    code, message = await status_of(upload(client, data, file_pb2.FileMetadata(
        filename=filename)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("not a supported audio file")
    sha256 = hashlib.sha256(data).hexdigest()
    response = await client.file.Stat(file_pb2.StatRequest(hashes=[sha256]),
                                      metadata=client.meta())
    assert (list(response.missing), list(response.files)) == ([sha256], [])
    assert stored_blobs(settings.data_dir) == []
    assert leftovers(settings.data_dir) == []


def test_mutagen_is_imported_only_when_a_file_is_read():
    # About 5 MiB of the idle server's memory budget.
    code = ("import sys, musicsync.server, musicsync.cli, musicsync.library.audio; "
            "print(sorted(m for m in sys.modules if m.startswith('mutagen')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
