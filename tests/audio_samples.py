"""Small songs in every accepted format, built in pure Python (no encoders here).

Each builder lays out just the structures a parser needs to find the codec and
its stream properties, then mutagen itself writes the tags, as a tagger would.
The audio payloads are silence where that is cheap to get right: MP3 frames of
zeros, FLAC CONSTANT subframes, PCM zeros, 1-byte Opus packets. The Vorbis
setup header, the AAC frames and the WMA data object are placeholders: a
decoder needs an encoder's output there, and the server only parses headers.
Every sample is a few KB and about one second long (WAV: a quarter, to stay small).
"""

from __future__ import annotations

import hashlib
import io
import struct
import uuid
from dataclasses import dataclass

from mutagen.asf import ASF, ASFDWordAttribute
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TALB, TCON, TDRC, TIT2, TPE1, TPE2, TPOS, TRCK
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.ogg import OggPage
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from .transfer import wav_bytes

# What every sample is tagged with (non-ASCII on purpose: each scheme encodes it differently).
TAGS = dict(title="Señal de prueba", artist="Ørsted Ensemble", album="Ondes — vol. 2",
            album_artist="Various Artists", genre="Ambient", track=3, disc=2, year=2021)


@dataclass(frozen=True)
class Sample:
    """A song and what the server should read from it."""

    format: str
    filename: str
    data: bytes
    codec: str
    sample_rate: int
    channels: int
    duration_ms: int


def samples(tags: dict | None = TAGS) -> list[Sample]:
    """One sample per accepted format, tagged with ``tags`` (None: untagged)."""
    return [mp3(tags), flac(tags), wav(tags), ogg_vorbis(tags), opus(tags), m4a(tags),
            wma(tags), adts_aac(tags)]


# -- MP3 and raw AAC: ID3v2 tags ----------------------------------------------------------

def _id3_frames(tags: dict) -> list:
    return [TIT2(encoding=3, text=tags["title"]), TPE1(encoding=3, text=tags["artist"]),
            TALB(encoding=3, text=tags["album"]), TPE2(encoding=3, text=tags["album_artist"]),
            TCON(encoding=3, text=tags["genre"]), TRCK(encoding=3, text=f"{tags['track']}/12"),
            TPOS(encoding=3, text=f"{tags['disc']}/2"), TDRC(encoding=3, text=str(tags["year"]))]


def mp3(tags: dict | None = TAGS, *, frames: int = 50) -> Sample:
    # MPEG-1 Layer III, 32 kbit/s, 48 kHz, mono, no CRC: 1152 samples (24 ms) in
    # 144 * 32000 / 48000 = 96 bytes. A frame of zeros after the header is valid
    # silence (no main data, all side-info lengths 0). mutagen wants 4 frames in a
    # row before it trusts a sync, and estimates a CBR file's length from its size.
    header = bytes([0xFF, 0xFB, 0x14, 0xC0])
    raw = (header + bytes(92)) * frames
    data = _with_tags(MP3, raw, None if tags is None else
                      lambda audio: [audio.add_tags(), *map(audio.tags.add, _id3_frames(tags))])
    return Sample("mp3", "song.mp3", data, "mp3", 48000, 1, frames * 24)


def adts_aac(tags: dict | None = TAGS, *, frames: int = 43) -> Sample:
    # Raw AAC-LC in ADTS frames (44.1 kHz, stereo), each a 7-byte header without CRC
    # and a 9-byte raw frame (a placeholder); mutagen needs 3 frames in a row. It cannot tag
    # ADTS, so the ID3v2 tag it builds is written in front, where taggers put it.
    payload = bytes.fromhex("210049900219002380")
    length = 7 + len(payload)
    header = struct.pack(">HBBBBB", 0xFFF1,  # sync, MPEG-4, layer 0, no CRC
                         (1 << 6) | (4 << 2) | (2 >> 2),  # AAC LC, 44.1 kHz, channels (high bit)
                         ((2 & 3) << 6) | (length >> 11),  # channels (low bits), frame length...
                         (length >> 3) & 0xFF,
                         ((length & 7) << 5) | 0x1F,  # ...and buffer fullness 0x7FF (VBR)
                         0xFC)  # one raw data block
    data = (header + payload) * frames
    if tags is not None:
        tag = ID3()
        for frame in _id3_frames(tags):
            tag.add(frame)
        buffer = io.BytesIO()
        tag.save(buffer)
        data = buffer.getvalue() + data
    return Sample("aac", "song.aac", data, "aac", 44100, 2, round(frames * 1024 / 44.1))


# -- FLAC ------------------------------------------------------------------------------

def _crc8(data: bytes) -> int:  # FLAC frame header CRC: polynomial 0x07, init 0
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:  # FLAC frame footer CRC: polynomial 0x8005, init 0
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def flac(tags: dict | None = TAGS, *, rate: int = 44100, blocks: int = 10) -> Sample:
    # Ten fixed-size frames of 4410 stereo 16-bit samples, each channel a CONSTANT
    # subframe of 0: one second of silence that a decoder can check (CRCs, MD5).
    block = rate // blocks
    frames = b""
    for number in range(blocks):
        head = bytes([0xFF, 0xF8,  # sync, fixed block size
                      0x79,  # block size: 16-bit value at the end; 44.1 kHz
                      0x18,  # two independent channels, 16 bits per sample
                      number])  # frame number, UTF-8 coded (one byte below 128)
        head += struct.pack(">H", block - 1)
        head += bytes([_crc8(head)])
        body = head + bytes([0x00, 0x00, 0x00]) * 2  # per channel: CONSTANT type, value 0
        frames += body + struct.pack(">H", _crc16(body))
    frame_size = len(frames) // blocks
    md5 = hashlib.md5(bytes(rate * 2 * 2)).digest()  # of the decoded samples
    streaminfo = struct.pack(">HH", block, block) + frame_size.to_bytes(3, "big") * 2
    streaminfo += ((rate << 44) | (1 << 41) | (15 << 36) | rate).to_bytes(8, "big") + md5
    # rate: 20 bits; channels - 1: 3 bits; bits per sample - 1: 5 bits; total samples: 36 bits
    raw = b"fLaC" + bytes([0x80]) + len(streaminfo).to_bytes(3, "big") + streaminfo + frames
    data = _with_tags(FLAC, raw, None if tags is None else
                      lambda audio: audio.update(_vorbis_comments(tags)))
    return Sample("flac", "song.flac", data, "flac", rate, 2, 1000)


# -- WAV: PCM with an "id3 " chunk --------------------------------------------------------

def wav(tags: dict | None = TAGS) -> Sample:
    raw = wav_bytes(0.25, rate=8000)
    data = _with_tags(WAVE, raw, None if tags is None else
                      lambda audio: [audio.add_tags(), *map(audio.tags.add, _id3_frames(tags))])
    return Sample("wav", "song.wav", data, "wav", 8000, 1, 250)


def wav_riff_info(tags: dict = TAGS) -> Sample:
    # The other common way to tag a WAV: a LIST chunk of type INFO after the data,
    # NUL-terminated texts under four-letter ids (mutagen neither reads nor writes it).
    raw = wav_bytes(0.25, rate=8000)
    fields = {b"INAM": tags["title"], b"IART": tags["artist"], b"IPRD": tags["album"],
              b"IGNR": tags["genre"], b"ICRD": f"{tags['year']}-05-01",
              b"ITRK": str(tags["track"])}
    info = b"INFO"
    for key, text in fields.items():
        value = text.encode() + b"\0"
        info += key + struct.pack("<I", len(value)) + value + b"\0" * (len(value) & 1)
    body = raw[12:] + b"LIST" + struct.pack("<I", len(info)) + info
    data = b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body
    return Sample("wav", "info.wav", data, "wav", 8000, 1, 250)


# -- Ogg Vorbis and Opus ---------------------------------------------------------------

def _vorbis_comments(tags: dict) -> dict:
    return {"title": tags["title"], "artist": tags["artist"], "album": tags["album"],
            "albumartist": tags["album_artist"], "genre": tags["genre"],
            "tracknumber": f"{tags['track']}/12", "discnumber": str(tags["disc"]),
            "date": f"{tags['year']}-05-01"}


def _ogg(headers: list[list[bytes]], audio: list[bytes], granule: int) -> bytes:
    """An Ogg stream: one page per group of header packets, then one audio page."""
    pages = []
    for sequence, packets in enumerate([*headers, audio]):
        page = OggPage()
        page.serial = 0x5EED
        page.sequence = sequence
        page.packets = packets
        page.first = sequence == 0  # beginning of stream: only the identification header
        page.last = sequence == len(headers)  # end of stream
        page.position = granule if page.last else 0  # header pages carry granule 0
        pages.append(page.write())
    return b"".join(pages)


def ogg_vorbis(tags: dict | None = TAGS, *, rate: int = 44100) -> Sample:
    # Identification header: version 0, 2 channels, rate, nominal bitrate 64 kbit/s,
    # block sizes 256 and 2048, framing bit. The comment header is mutagen's to
    # rewrite; the setup header (codebooks, floors, ...) must end its page, and its
    # body is a stub. mutagen takes the length from the last page's granule.
    ident = b"\x01vorbis" + struct.pack("<IBIiii", 0, 2, rate, 0, 64000, 0) + b"\xb8\x01"
    comment = b"\x03vorbis" + struct.pack("<I", 0) + struct.pack("<I", 0) + b"\x01"
    setup = b"\x05vorbis" + b"\x00" * 8
    audio = [b"\x00"] * 20  # audio packets start with a 0 bit
    raw = _ogg([[ident], [comment, setup]], audio, granule=rate)
    data = _with_tags(OggVorbis, raw, None if tags is None else
                      lambda audio: audio.update(_vorbis_comments(tags)))
    return Sample("vorbis", "song.ogg", data, "vorbis", rate, 2, 1000)


def opus(tags: dict | None = TAGS) -> Sample:
    # OpusHead: version 1, 2 channels, pre-skip 312, input rate 44.1 kHz (only a
    # hint: Opus always decodes at 48 kHz), gain 0, mapping family 0. Then 51
    # one-byte packets (TOC 0xFC: CELT fullband 20 ms stereo, one empty frame,
    # which a decoder conceals as silence): 48960 samples, and a final granule of
    # 48000 + 312 that trims the end so exactly one second remains (RFC 7845).
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 312, 44100, 0, 0)
    comments = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    raw = _ogg([[head], [comments]], [b"\xfc"] * 51, granule=48000 + 312)
    data = _with_tags(OggOpus, raw, None if tags is None else
                      lambda audio: audio.update(_vorbis_comments(tags)))
    return Sample("opus", "song.opus", data, "opus", 48000, 2, 1000)


# -- M4A: a minimal MP4 with one AAC track --------------------------------------------------

def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def _descriptor(tag: int, *payload: bytes) -> bytes:  # MPEG-4 descriptors (short lengths)
    body = b"".join(payload)
    return bytes([tag, len(body)]) + body


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)  # identity


def m4a(tags: dict | None = TAGS, *, rate: int = 44100, frames: int = 43,
        handler: bytes = b"soun", object_type: int = 0x40) -> Sample:
    # mdat first (the sample table then points at fixed offsets, whatever mutagen
    # later adds to moov): AAC-LC stereo frames of 1024 samples. moov: mvhd; one trak
    # whose mdhd gives the length, hdlr "soun" marks it audio, and the stsd entry
    # "mp4a" with its esds (AudioSpecificConfig: AAC LC, 44.1 kHz, 2 channels) gives
    # codec, rate, channels and bitrate; stts/stsc/stsz/stco index the frames.
    # (handler=b"vide" makes the same file a video without sound, for rejection tests;
    # object_type=0x6B declares MPEG-1 audio, i.e. MP3 in MP4, which has no config.)
    frame = bytes.fromhex("210049900219002380")
    ftyp = _box(b"ftyp", b"M4A ", struct.pack(">I", 0), b"M4A mp42isom")
    mdat = _box(b"mdat", frame * frames)
    first_frame = len(ftyp) + 8
    ticks = frames * 1024
    bitrate = len(frame) * 8 * rate // 1024
    config = _descriptor(0x05, bytes([0x12, 0x10])) if object_type == 0x40 else b""
    # DecoderConfig: object type (0x40: MPEG-4 audio), audio stream, buffer size, max and
    # average bitrate, then the AudioSpecificConfig; ES_Descriptor: ES id 1, no flags;
    # SLConfig: predefined for MP4.
    decoder = _descriptor(0x04, struct.pack(">BB3sII", object_type, 0x15, bytes(3), bitrate,
                                            bitrate), config)
    esds = _full_box(b"esds", 0, 0, _descriptor(0x03, struct.pack(">HB", 1, 0), decoder,
                                                _descriptor(0x06, b"\x02")))
    mp4a = _box(b"mp4a", bytes(6), struct.pack(">H", 1),  # reserved, data reference 1
                bytes(8), struct.pack(">HHHHI", 2, 16, 0, 0, rate << 16), esds)
    stbl = _box(b"stbl",
                _full_box(b"stsd", 0, 0, struct.pack(">I", 1), mp4a),
                _full_box(b"stts", 0, 0, struct.pack(">III", 1, frames, 1024)),
                _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, frames, 1)),
                _full_box(b"stsz", 0, 0, struct.pack(">II", 0, frames),
                          struct.pack(f">{frames}I", *[len(frame)] * frames)),
                _full_box(b"stco", 0, 0, struct.pack(">II", 1, first_frame)))
    minf = _box(b"minf", _full_box(b"smhd", 0, 0, bytes(4)),
                _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1),
                                        _full_box(b"url ", 0, 1))),  # data in this file
                stbl)
    mdia = _box(b"mdia",
                _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, rate, ticks, 0x55C4, 0)),
                _full_box(b"hdlr", 0, 0, bytes(4), handler, bytes(12), b"SoundHandler\0"),
                minf)
    tkhd = _full_box(b"tkhd", 0, 7, struct.pack(">IIIII", 0, 0, 1, 0, ticks), bytes(8),
                     struct.pack(">hhHH", 0, 0, 0x0100, 0), _MATRIX, bytes(8))
    mvhd = _full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, rate, ticks),
                     struct.pack(">IH", 0x10000, 0x0100), bytes(10), _MATRIX, bytes(24),
                     struct.pack(">I", 2))
    raw = ftyp + mdat + _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))

    def tag(audio: MP4) -> None:
        audio.add_tags()
        audio.tags.update({"\xa9nam": tags["title"], "\xa9ART": tags["artist"],
                           "\xa9alb": tags["album"], "aART": tags["album_artist"],
                           "\xa9gen": tags["genre"], "trkn": [(tags["track"], 12)],
                           "disk": [(tags["disc"], 2)], "\xa9day": f"{tags['year']}-05-01"})
    data = _with_tags(MP4, raw, None if tags is None else tag)
    return Sample("m4a", "song.m4a", data, "aac", rate, 2, round(ticks * 1000 / rate))


# -- WMA: an ASF header and an empty data object -------------------------------------------

VIDEO_STREAM = "BC19EFC0-5B4D-11CF-A8FD-00805F5C442B"  # ASF_Video_Media


def _guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le  # ASF stores GUIDs in Windows (little-endian) order


def _asf_object(guid: str, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return _guid(guid) + struct.pack("<Q", 24 + len(body)) + body


def _utf16z(text: str) -> bytes:
    """A counted, NUL-terminated UTF-16 string (the count is in code units)."""
    return struct.pack("<H", len(text) + 1) + (text + "\0").encode("utf-16-le")


def wma(tags: dict | None = TAGS, *, rate: int = 44100,
        stream_type: str = "F8699E40-5B4D-11CF-A8FD-00805F5C442B") -> Sample:
    # Header object holding: File Properties (play duration in 100 ns units, minus
    # the 3.1 s preroll, is the length), Stream Properties of an audio stream (a
    # WAVEFORMATEX for WMA 9 Standard gives channels, rate and byte rate) and the
    # Codec List (the codec's name). The Data object that follows holds no packets.
    # mutagen adds Content Description, Extended Content Description and the
    # Header Extension when it writes the tags. (Another stream_type, such as
    # VIDEO_STREAM, makes the stream something other than audio, for rejection tests.)
    file_id = uuid.UUID(int=0x5EED).bytes_le
    preroll_ms = 3100
    file_props = _asf_object(
        "8CABDCA1-A947-11CF-8EE4-00C00C205365", file_id,
        struct.pack("<QQQQQQIIII", 0, 0, 0, (1000 + preroll_ms) * 10_000,
                    (1000 + preroll_ms) * 10_000, preroll_ms, 0x02, 3200, 3200, 64000))
    # file size, creation date, packet count, play and send durations, preroll, flags
    # (seekable), min/max packet size, max bitrate
    waveformat = struct.pack("<HHIIHHH", 0x0161, 2, rate, 8000, 2973, 16, 10) + bytes(10)
    stream_props = _asf_object(
        "B7DC0791-A9B7-11CF-8EE6-00C00C205365",
        _guid(stream_type),  # audio, unless a test says otherwise
        _guid("20FB5700-5B55-11CF-A8FD-00805F5C442B"),  # error correction: none
        struct.pack("<QIIHI", 0, len(waveformat), 0, 1, 0), waveformat)  # stream number 1
    codec_list = _asf_object(
        "86D15240-311D-11D0-A3A4-00A0C90348F6", _guid("86D15241-311D-11D0-A3A4-00A0C90348F6"),
        struct.pack("<IH", 1, 2),  # one entry, of type audio
        _utf16z("Windows Media Audio 9.2"), _utf16z("64 kbps, 44 kHz, stereo 1-pass CBR"),
        struct.pack("<HH", 2, 0x0161))  # codec information: the WAVEFORMATEX codec id
    objects = [file_props, stream_props, codec_list]
    body = b"".join(objects)
    header = (_guid("75B22630-668E-11CF-A6D9-00AA0062CE6C")
              + struct.pack("<QIBB", 30 + len(body), len(objects), 1, 2) + body)
    data_object = (_guid("75B22636-668E-11CF-A6D9-00AA0062CE6C") + struct.pack("<Q", 50)
                   + file_id + struct.pack("<QH", 0, 0x0101))  # no packets; reserved
    raw = header + data_object

    def tag(audio: ASF) -> None:
        audio.update({"Title": tags["title"], "Author": tags["artist"],
                      "WM/AlbumTitle": tags["album"], "WM/AlbumArtist": tags["album_artist"],
                      "WM/Genre": tags["genre"],
                      "WM/TrackNumber": [ASFDWordAttribute(tags["track"])],
                      "WM/PartOfSet": f"{tags['disc']}/2", "WM/Year": str(tags["year"])})
    data = _with_tags(ASF, raw, None if tags is None else tag)
    return Sample("wma", "song.wma", data, "wma", rate, 2, 1000)


# -- Tagging ----------------------------------------------------------------------------

def _with_tags(kind, raw: bytes, tag) -> bytes:
    """``raw`` with tags written by mutagen's ``kind`` through ``tag(audio)``."""
    if tag is None:
        return raw
    buffer = io.BytesIO(raw)
    audio = kind(buffer)
    tag(audio)
    buffer.seek(0)
    audio.save(buffer)
    return buffer.getvalue()
