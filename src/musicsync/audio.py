"""Is it a song, and what do its tags say? (mutagen, run in a worker thread.)

Accepted: MP3, FLAC, WAV, Ogg Vorbis, Opus, M4A/AAC (and raw ADTS AAC), WMA.
``looks_like_audio`` rejects obvious non-audio from the first bytes of an
upload, before the rest arrives; ``read_audio`` parses the complete file and
returns None for anything mutagen does not recognise as one of those formats.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import BinaryIO

import mutagen
from mutagen.aac import AAC
from mutagen.asf import ASF
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from .errors import StorageUnavailable
from .library import Tags

log = logging.getLogger(__name__)

SUPPORTED = "MP3, FLAC, WAV, Ogg Vorbis, Opus, M4A/AAC or WMA"
NOT_AUDIO = f"not a supported audio file (send {SUPPORTED})"
SNIFF_BYTES = 16
_KINDS = [MP3, FLAC, WAVE, OggVorbis, OggOpus, MP4, ASF, AAC]
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_MAX_TAG_CHARS = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def looks_like_audio(head: bytes) -> bool:
    """Whether the first bytes of a file could start one of the accepted formats.

    Needs SNIFF_BYTES bytes (fewer only for a shorter file).
    """
    if head[:3] == b"ID3":  # ID3v2 tags precede MP3, AAC and sometimes FLAC data
        return True
    if head[:4] in (b"fLaC", b"OggS"):
        return True
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return True
    if head[4:8] == b"ftyp":  # MP4 family (M4A)
        return True
    if head[:16] == _ASF_GUID:  # ASF (WMA)
        return True
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0  # MPEG/ADTS sync


@dataclass(frozen=True)
class AudioInfo:
    tags: Tags  # including codec and stream properties
    extension: str  # the usual file extension of the container, with its dot


def read_audio(fileobj: BinaryIO) -> AudioInfo | None:
    """The codec, stream properties and tags of a song; None if it is not one we accept."""
    try:
        audio = mutagen.File(fileobj, options=_KINDS)
    except StorageUnavailable:  # a reader over a remote store: not the file's fault
        raise
    except Exception as exc:  # noqa: BLE001 - mutagen raises many kinds for bad input
        log.debug("mutagen rejected an upload: %s", exc)
        return None
    if audio is None or audio.info is None:
        return None
    info = audio.info
    length = getattr(info, "length", 0) or 0
    text = _tag_reader(audio)
    tags = Tags(
        title=text("title"), artist=text("artist"), album=text("album"),
        album_artist=text("album_artist"), genre=text("genre"),
        track=_leading_number(text("track")), disc=_leading_number(text("disc")),
        year=_year(text("year")),
        duration_ms=int(round(length * 1000)),
        bitrate=int(getattr(info, "bitrate", 0) or 0),
        sample_rate=int(getattr(info, "sample_rate", 0) or 0),
        channels=int(getattr(info, "channels", 0) or 0),
        codec=_codec(audio))
    return AudioInfo(tags=tags, extension=_EXTENSIONS[type(audio)])


_EXTENSIONS = {MP3: ".mp3", FLAC: ".flac", WAVE: ".wav", OggVorbis: ".ogg", OggOpus: ".opus",
               MP4: ".m4a", ASF: ".wma", AAC: ".aac"}


def _codec(audio) -> str:
    if isinstance(audio, MP4):
        codec = (getattr(audio.info, "codec", "") or "").lower()
        return "aac" if codec.startswith("mp4a") else (codec or "mp4")
    return {MP3: "mp3", FLAC: "flac", WAVE: "wav", OggVorbis: "vorbis", OggOpus: "opus",
            ASF: "wma", AAC: "aac"}[type(audio)]


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


def _tag_reader(audio):
    """A function from our tag name to its text in this file ('' when absent)."""
    tags = audio.tags
    if tags is None:
        return lambda name: ""
    if isinstance(audio, MP4):
        def mp4(name: str) -> str:
            values = tags.get(_MP4[name]) or []
            if not values:
                return ""
            value = values[0]
            return str(value[0]) if isinstance(value, tuple) else _clean(value)
        return mp4
    if isinstance(audio, ASF):
        def asf(name: str) -> str:
            values = tags.get(_ASF[name]) or []
            return _clean(getattr(values[0], "value", values[0])) if values else ""
        return asf
    if isinstance(audio, (FLAC, OggVorbis, OggOpus)):
        def vorbis(name: str) -> str:
            for key in _VORBIS[name]:
                values = tags.get(key)
                if values:
                    return _clean(values[0])
            return ""
        return vorbis

    def id3(name: str) -> str:  # MP3, WAV and AAC carry ID3 tags
        frame = tags.get(_ID3[name]) if hasattr(tags, "get") else None
        texts = getattr(frame, "text", None) or []
        return _clean(texts[0]) if texts else ""
    return id3


def _clean(value) -> str:
    text = str(value).split("\x00", 1)[0]
    return _CONTROL.sub(" ", text).strip()[:_MAX_TAG_CHARS]


def _leading_number(text: str) -> int:
    """3 from '3', '3/12' or '03 of 12'; 0 if there is none."""
    match = re.match(r"\s*(\d{1,6})", text)
    return int(match.group(1)) if match else 0


def _year(text: str) -> int:
    match = re.search(r"(?<!\d)(\d{4})(?!\d)", text)
    return int(match.group(1)) if match else 0
