"""Is it a song, and what do its tags say? (mutagen, run in a worker thread.)

Accepted: MP3, FLAC, WAV, Ogg Vorbis, Opus, M4A/AAC (and raw ADTS AAC), WMA.
``looks_like_audio`` rejects obvious non-audio from the first bytes of an
upload, before the rest arrives; ``read_audio`` parses the complete file and
returns None for anything that is not one of those formats with an audio stream.

The parser is chosen from the file's own first bytes, not from mutagen's
format scores: those weigh the file name (the server's temporary files have
none), and without a name they recognise neither raw ADTS AAC nor MP3 frames
that start with some of the valid headers. mutagen is imported on first use:
it is about 5 MiB of an idle server's memory.

The server runs ``parse_audio`` in a worker process (audio_check/), bounded in
time and memory: this module imports nothing of the server's (no grpc, no
SQLAlchemy) so that worker stays small. ``read_audio`` is the same check in
the calling thread, unbounded, for files the server wrote itself.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
import struct
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from .entries import Tags

log = logging.getLogger(__name__)

SUPPORTED = "MP3, FLAC, WAV, Ogg Vorbis, Opus, M4A/AAC or WMA"
NOT_AUDIO = f"not a supported audio file (send {SUPPORTED})"
SNIFF_BYTES = 16
_MAX_ID3_TAGS = 8  # stacked ID3v2 tags skipped before the audio starts
_INT32_MAX = 2**31 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _asf_guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le  # ASF stores GUIDs in little-endian order


_ASF_HEADER = _asf_guid("75B22630-668E-11CF-A6D9-00AA0062CE6C")
_ASF_STREAM_PROPERTIES = _asf_guid("B7DC0791-A9B7-11CF-8EE6-00C00C205365")
_ASF_AUDIO_MEDIA = _asf_guid("F8699E40-5B4D-11CF-A8FD-00805F5C442B")


def _container(head: bytes) -> str | None:
    """What the bytes at the start of the audio data (after any ID3v2 tag) begin."""
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[4:8] == b"ftyp":  # MP4 family (M4A)
        return "mp4"
    if head[:16] == _ASF_HEADER:  # ASF (WMA)
        return "asf"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # 11 sync bits; ADTS has 12 and the layer bits 00, which MPEG audio never uses.
        return "adts" if head[1] & 0xF6 == 0xF0 else "mpeg"
    return None


def looks_like_audio(head: bytes) -> bool:
    """Whether the first bytes of a file could start one of the accepted formats.

    Needs SNIFF_BYTES bytes (fewer only for a shorter file).
    """
    # ID3v2 tags precede MP3, AAC and sometimes FLAC data: read_audio looks behind them.
    return head[:3] == b"ID3" or _container(head) is not None


@dataclass(frozen=True)
class CoverPicture:
    """A song's embedded cover picture, checked to be an image of a sane size
    (audio_check/pictures.py): its bytes, format and pixel size from its header."""

    data: bytes
    mime_type: str
    width: int
    height: int


@dataclass(frozen=True)
class AudioInfo:
    tags: Tags  # including codec and stream properties
    extension: str  # the usual file extension of the container, with its dot
    picture: CoverPicture | None = None  # the embedded cover, when the audio check kept one


# Our name of each format: its mutagen class, file extension and tagging scheme.
_FORMATS = {
    "mp3": ("mutagen.mp3", "MP3", ".mp3", "id3"),
    "flac": ("mutagen.flac", "FLAC", ".flac", "vorbis"),
    "wav": ("mutagen.wave", "WAVE", ".wav", "id3"),
    "vorbis": ("mutagen.oggvorbis", "OggVorbis", ".ogg", "vorbis"),
    "opus": ("mutagen.oggopus", "OggOpus", ".opus", "vorbis"),
    "m4a": ("mutagen.mp4", "MP4", ".m4a", "mp4"),
    "wma": ("mutagen.asf", "ASF", ".wma", "asf"),
    "aac": ("mutagen.aac", "AAC", ".aac", "id3"),
}
_CANDIDATES = {"flac": ["flac"], "ogg": ["vorbis", "opus"], "wav": ["wav"], "mp4": ["m4a"],
               "asf": ["wma"], "adts": ["aac"], "mpeg": ["mp3"]}


def read_audio(fileobj: BinaryIO) -> AudioInfo | None:
    """The codec, stream properties and tags of a song; None if it is not one we accept.

    In the calling thread, without bounds (see the module docstring)."""
    from ..errors import StorageUnavailable  # the server's modules, kept out of the worker

    parsed = parse_audio(fileobj, passthrough=(StorageUnavailable,))
    return None if parsed is None else audio_info(*parsed)


def audio_info(fields: dict, extension: str, picture: CoverPicture | None = None) -> AudioInfo:
    """What parse_audio found, as the server keeps it (texts cut to the tag limit)."""
    from .entries import Tags
    from ..limits import clip

    return AudioInfo(tags=Tags(**{key: clip(value) if isinstance(value, str) else value
                                  for key, value in fields.items()}), extension=extension,
                     picture=picture)


def parse_audio(fileobj: BinaryIO, *,
                passthrough: tuple[type[BaseException], ...] = ()) -> tuple[dict, str] | None:
    """The fields of a Tags (texts not yet cut) and the file extension; None if not audio.

    ``passthrough``: errors of the reader itself (not the file's fault), raised as they are.
    """
    parsed = _parse(fileobj, passthrough)
    return None if parsed is None else (parsed[2], _FORMATS[parsed[0]][2])


def parse_audio_and_picture(fileobj: BinaryIO, *,
                            passthrough: tuple[type[BaseException], ...] = ()
                            ) -> tuple[dict, str, tuple[bytes, str] | None, str] | None:
    """parse_audio, then the embedded cover picture (embedded_picture) and why it was
    left out ("" if it was not, or there is none). The picture is not yet known to be an
    image: see audio_check/pictures.py. None if not audio."""
    parsed = _parse(fileobj, passthrough)
    if parsed is None:
        return None
    name, audio, fields = parsed
    picture, skipped = None, ""
    try:
        picture = embedded_picture(name, audio, fileobj)
    except passthrough:
        raise
    except MemoryError:
        raise
    except PictureTooLarge as exc:
        skipped = f"{exc}, over {MAX_EMBEDDED_PICTURE >> 20} MiB"
    except Exception as exc:  # noqa: BLE001 - a damaged picture tag: the song still counts
        skipped = f"unreadable ({type(exc).__name__}: {exc})"
    return fields, _FORMATS[name][2], picture, skipped


def _parse(fileobj: BinaryIO, passthrough: tuple[type[BaseException], ...]):
    """(our format name, mutagen's object, the fields of a Tags), or None if not audio."""
    for name in _candidates(fileobj):
        module, cls, _, _ = _FORMATS[name]
        fileobj.seek(0)
        try:
            audio = getattr(importlib.import_module(module), cls)(fileobj)
        except passthrough:
            raise
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - mutagen raises many kinds for bad input
            log.debug("mutagen rejected an upload as %s: %s", name, exc)
            continue
        fields = _describe(name, audio, fileobj)
        if fields is not None:
            return name, audio, fields
    return None


def _candidates(fileobj: BinaryIO) -> list[str]:
    """The formats worth trying, from the first bytes behind any ID3v2 tags."""
    fileobj.seek(0)
    head = fileobj.read(SNIFF_BYTES)
    offset, tagged = 0, False
    for _ in range(_MAX_ID3_TAGS):
        if head[:3] != b"ID3" or len(head) < 10:
            break
        size = 0
        for byte in head[6:10]:  # "syncsafe": 7 bits per byte
            size = size << 7 | byte & 0x7F
        offset += 10 + size + (10 if head[5] & 0x10 else 0)  # header, body, footer
        tagged = True
        fileobj.seek(offset)
        head = fileobj.read(SNIFF_BYTES)
    container = _container(head)
    if container is None:
        # Behind a tag, MP3 frames may follow padding or junk; mutagen hunts for them.
        return ["mp3"] if tagged else []
    return _CANDIDATES[container]


def _describe(name: str, audio, fileobj: BinaryIO) -> dict | None:
    """What we keep of a parsed file; None if it holds no audio stream we can read."""
    info = audio.info
    if info is None:
        return None
    if name == "mp3" and info.sketchy:
        return None  # fewer than 4 MPEG frames in a row: a stray sync in other data
    channels = _int32(getattr(info, "channels", 0))
    sample_rate = _int32(getattr(info, "sample_rate", 0))
    bitrate = _int32(getattr(info, "bitrate", 0))
    if name == "opus":
        sample_rate = 48000  # Opus always decodes at 48 kHz; OpusHead's rate is a hint
    if name == "wma":
        # mutagen reads the last stream's properties as audio, whatever its type.
        stream = _asf_audio_stream(fileobj)
        if stream is None:
            return None
        channels, sample_rate, bitrate = map(_int32, stream)
    if not channels and not sample_rate:
        return None  # e.g. an MP4 without a sound track (mutagen falls back to mvhd)
    text = _tag_reader(name, audio, fileobj)
    return dict(
        title=text("title"), artist=text("artist"), album=text("album"),
        album_artist=text("album_artist"), genre=text("genre"),
        track=_leading_number(text("track")), disc=_leading_number(text("disc")),
        year=_year(text("year")),
        duration_ms=_duration_ms(info.length),
        bitrate=bitrate, sample_rate=sample_rate, channels=channels,
        codec=_codec(name, info))


def _int32(value) -> int:
    """A stream property for an int32 field; 0 (unknown) when damaged data puts it out of range."""
    try:
        number = int(value or 0)
    except (ValueError, OverflowError):  # NaN or infinity from a parser's arithmetic
        return 0
    return number if 0 <= number <= _INT32_MAX else 0


def _duration_ms(seconds) -> int:
    """Milliseconds; 0 (unknown) for a length that is negative (an Ogg stream cut before
    its pre-skip ends), not a number, or more seconds than the int32 `duration` holds."""
    seconds = float(seconds or 0)
    if not math.isfinite(seconds) or not 0 <= seconds < _INT32_MAX:
        return 0
    return int(round(seconds * 1000))


def _codec(name: str, info) -> str:
    if name == "m4a":
        codec = (getattr(info, "codec", "") or "").lower()
        if codec in ("mp4a.40.34", "mp4a.6b", "mp4a.69"):  # MPEG audio layer 3 in MP4
            return "mp3"
        return "aac" if codec.startswith("mp4a") else (codec or "mp4")
    return name


def _asf_audio_stream(fileobj: BinaryIO) -> tuple[int, int, int] | None:
    """Channels, sample rate and bit rate of an ASF file's first audio stream; None if none.

    Walks the top-level objects of the header, which mutagen has parsed already.
    """
    fileobj.seek(16)
    _, count = struct.unpack("<QI", fileobj.read(12))
    position = 30
    for _ in range(count):
        fileobj.seek(position)
        head = fileobj.read(24)
        if len(head) < 24:
            break
        guid, size = struct.unpack("<16sQ", head)
        if size < 24:
            break
        if guid == _ASF_STREAM_PROPERTIES:
            body = fileobj.read(66)
            # Stream type GUID, ..., then a WAVEFORMATEX at byte 54 for audio.
            if len(body) == 66 and body[:16] == _ASF_AUDIO_MEDIA:
                channels, sample_rate, byte_rate = struct.unpack("<HII", body[56:66])
                return channels, sample_rate, byte_rate * 8
        position += size
    return None


# Where each tag lives, per tagging scheme.
_ID3 = {"title": "TIT2", "artist": "TPE1", "album": "TALB", "album_artist": "TPE2",
        "genre": "TCON", "track": "TRCK", "disc": "TPOS", "year": "TDRC"}
_VORBIS = {"title": ("title",), "artist": ("artist",), "album": ("album",),
           "album_artist": ("albumartist", "album artist", "album_artist"),
           "genre": ("genre",), "track": ("tracknumber",), "disc": ("discnumber",),
           "year": ("date", "year")}
_MP4 = {"title": "\xa9nam", "artist": "\xa9ART", "album": "\xa9alb", "album_artist": "aART",
        "genre": "\xa9gen", "track": "trkn", "disc": "disk", "year": "\xa9day"}
_ASF = {"title": "Title", "artist": "Author", "album": "WM/AlbumTitle",
        "album_artist": "WM/AlbumArtist", "genre": "WM/Genre", "track": "WM/TrackNumber",
        "disc": "WM/PartOfSet", "year": "WM/Year"}


def _tag_reader(name: str, audio, fileobj: BinaryIO):
    """A function from our tag name to its text in this file ('' when absent)."""
    tags = _id3_before_adts(fileobj) if name == "aac" else audio.tags
    read = _scheme_reader(_FORMATS[name][3], tags)
    if name == "wav":
        # Many WAV taggers write a RIFF INFO list instead of (or beside) an ID3 chunk.
        info = _riff_info(fileobj)
        return lambda key: read(key) or _clean(info.get(_RIFF_INFO.get(key), ""))
    return read


def _scheme_reader(scheme: str, tags):
    if tags is None:
        return lambda key: ""
    if scheme == "mp4":
        def mp4(key: str) -> str:
            values = tags.get(_MP4[key]) or []
            if not values:
                return ""
            value = values[0]
            return str(value[0]) if isinstance(value, tuple) else _clean(value)
        return mp4
    if scheme == "asf":
        def asf(key: str) -> str:
            values = tags.get(_ASF[key]) or []
            return _clean(getattr(values[0], "value", values[0])) if values else ""
        return asf
    if scheme == "vorbis":
        def vorbis(key: str) -> str:
            for field in _VORBIS[key]:
                values = tags.get(field)
                if values:
                    return _clean(values[0])
            return ""
        return vorbis

    def id3(key: str) -> str:
        frame = tags.get(_ID3[key]) if hasattr(tags, "get") else None
        texts = getattr(frame, "text", None) or []  # mutagen names ID3v1 genre numbers
        return _clean(texts[0]) if texts else ""
    return id3


_RIFF_INFO = {"title": b"INAM", "artist": b"IART", "album": b"IPRD", "genre": b"IGNR",
              "year": b"ICRD", "track": b"ITRK"}
_MAX_INFO_BYTES = 1 << 20


def _riff_info(fileobj: BinaryIO) -> dict[bytes, str]:
    """The texts of a WAV file's LIST/INFO chunk, by chunk id (INAM, IART, ...)."""
    fileobj.seek(4)
    end = 8 + struct.unpack("<I", fileobj.read(4))[0]  # mutagen has parsed the RIFF header
    position = 12
    while position + 12 <= end:
        fileobj.seek(position)
        header = fileobj.read(12)
        if len(header) < 12:
            break
        kind, size = header[:4], struct.unpack("<I", header[4:8])[0]
        if kind == b"LIST" and header[8:12] == b"INFO":
            return _info_texts(fileobj.read(min(max(size - 4, 0), _MAX_INFO_BYTES)))
        position += 8 + size + (size & 1)  # chunks are padded to an even size
    return {}


def _info_texts(body: bytes) -> dict[bytes, str]:
    texts, position = {}, 0
    while position + 8 <= len(body):
        kind = body[position:position + 4]
        size = struct.unpack("<I", body[position + 4:position + 8])[0]
        raw = body[position + 8:position + 8 + size].split(b"\0", 1)[0]
        try:
            texts[kind] = raw.decode("utf-8")
        except UnicodeDecodeError:  # no encoding is declared; Windows tools write cp1252
            texts[kind] = raw.decode("cp1252", errors="replace")
        position += 8 + size + (size & 1)
    return texts


def _id3_before_adts(fileobj: BinaryIO):
    """The ID3v2 tag in front of raw AAC (mutagen's AAC class reads no tags), or None."""
    from mutagen import MutagenError
    from mutagen.id3 import ID3

    fileobj.seek(0)
    try:
        return ID3(fileobj)
    except MutagenError:  # no tag, or one too damaged to read: the audio still counts
        return None


def _clean(value) -> str:
    text = str(value).split("\x00", 1)[0]
    return _CONTROL.sub(" ", text).strip()  # cut to the tag limit by audio_info


def _leading_number(text: str) -> int:
    """3 from '3', '3/12' or '03 of 12'; 0 if there is none."""
    match = re.match(r"\s*(\d{1,6})", text)
    return int(match.group(1)) if match else 0


def _year(text: str) -> int:
    match = re.search(r"(?<!\d)(\d{4})(?!\d)", text)
    return int(match.group(1)) if match else 0


# -- Embedded cover pictures ------------------------------------------------------------

# Bytes of a picture worth passing on; a larger one is left where it is (the audio
# check logs it). audio_check/pictures.py holds the same bound and checks the rest.
MAX_EMBEDDED_PICTURE = 8 * 1024 * 1024
FRONT_COVER = 3  # the picture type of ID3 APIC, FLAC PICTURE and ASF WM/Picture


class PictureTooLarge(Exception):
    """The song's cover picture is over MAX_EMBEDDED_PICTURE bytes: its size in the text."""


def embedded_picture(name: str, audio, fileobj: BinaryIO) -> tuple[bytes, str] | None:
    """The front cover (else the first picture) of a parsed file: bytes and declared MIME
    type. None if it has none; PictureTooLarge if it is over MAX_EMBEDDED_PICTURE."""
    scheme = _FORMATS[name][3]
    if scheme == "id3":
        tags = _id3_before_adts(fileobj) if name == "aac" else audio.tags
        found = [(frame.type, frame.data, frame.mime)
                 for frame in (tags.getall("APIC") if hasattr(tags, "getall") else [])]
    elif scheme == "vorbis":
        found = [(p.type, p.data, p.mime) for p in getattr(audio, "pictures", [])]  # FLAC
        found += _vorbis_pictures(audio.tags)
    elif scheme == "mp4":
        found = [(FRONT_COVER, bytes(cover), _MP4_COVER_TYPES.get(cover.imageformat, ""))
                 for cover in (audio.tags.get("covr") or [] if audio.tags is not None else [])]
    else:  # asf
        found = [_asf_picture(getattr(value, "value", b""))
                 for value in (audio.tags.get("WM/Picture") or [] if audio.tags is not None
                               else [])]
        found = [picture for picture in found if picture is not None]
    if not found:
        return None
    kind, data, mime = next((p for p in found if p[0] == FRONT_COVER), found[0])
    if len(data) > MAX_EMBEDDED_PICTURE:
        raise PictureTooLarge(f"{len(data):,} bytes")
    return bytes(data), str(mime or "")


_MP4_COVER_TYPES = {13: "image/jpeg", 14: "image/png", 27: "image/bmp"}


def _vorbis_pictures(tags) -> list[tuple[int, bytes, str]]:
    """METADATA_BLOCK_PICTURE comments (base64 of a FLAC picture block), as Ogg files and
    some FLAC taggers carry them; base64 over the size bound is left undecoded."""
    import base64

    from mutagen.flac import Picture

    found = []
    for text in (tags.get("metadata_block_picture") or [] if tags is not None else []):
        if len(text) > MAX_EMBEDDED_PICTURE * 4 // 3 + 1024:
            raise PictureTooLarge(f"about {len(text) * 3 // 4:,} bytes")
        try:
            picture = Picture(base64.b64decode(text))
        except Exception as exc:  # noqa: BLE001 - damaged: the other pictures still count
            log.debug("a damaged METADATA_BLOCK_PICTURE: %s", exc)
            continue
        found.append((picture.type, picture.data, picture.mime))
    return found


def _asf_picture(value: bytes) -> tuple[int, bytes, str] | None:
    """WM/Picture: type (1 byte), data size (4, little-endian), MIME type and description
    (NUL-terminated UTF-16LE), then the data."""
    if len(value) < 5:
        return None
    kind, size = struct.unpack("<BI", value[:5])
    texts, position = [], 5
    for _ in range(2):
        end = position
        while end + 1 < len(value) and value[end:end + 2] != b"\0\0":
            end += 2
        texts.append(value[position:end].decode("utf-16-le", errors="replace"))
        position = end + 2
    data = value[position:position + size]
    return (kind, data, texts[0]) if data else None
