"""M3U8 playlist files: UTF-8, ``#EXTM3U`` then ``#EXTINF:<seconds>,<artist> - <title>``
and the song's path, relative to the folder the file is in.

A library path ("Artist/Album/01 Song.flac") stands for the file at that path under a
music folder (``root``); written playlists name it relative to the playlist file's own
folder, as players expect ("../Artist/Album/01 Song.flac" from root/Playlists/).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Line:
    """A song of a playlist file: its library path, and what #EXTINF says of it."""

    path: str
    seconds: int = -1
    title: str = ""


def render(lines: Iterable[Line], file_folder: Path, root: Path,
           missing: Iterable[str] = ()) -> str:
    """The text of a playlist file in ``file_folder`` for songs under ``root``. Paths of
    ``missing`` songs are written as comments (a player could not play them)."""
    out = ["#EXTM3U"]
    gone = set(missing)
    for line in lines:
        where = relative(root / Path(*PurePosixPath(line.path).parts), file_folder)
        if line.path in gone:
            out.append(f"# missing from the library: {where}")
            continue
        out.append(f"#EXTINF:{line.seconds},{_one_line(line.title)}")
        out.append(where)
    return "\n".join(out) + "\n"


def relative(target: Path, folder: Path) -> str:
    """``target`` as a path from ``folder``, with forward slashes (what players read
    on every system)."""
    return os.path.relpath(os.path.abspath(target), os.path.abspath(folder)).replace(os.sep, "/")


def parse(text: str, file_folder: Path, root: Path) -> tuple[list[str], list[str]]:
    """The library paths a playlist file names (in order), and the lines naming nothing
    under ``root`` (URLs, files elsewhere), as written."""
    found, outside = [], []
    root = Path(os.path.abspath(root))
    for raw in text.lstrip("\ufeff").splitlines():
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        if "://" in entry:
            outside.append(entry)
            continue
        local = Path(os.path.abspath(file_folder / entry.replace("\\", "/")))
        try:
            found.append(local.relative_to(root).as_posix())
        except ValueError:
            outside.append(entry)
    return found, outside


def _one_line(text: str) -> str:
    return " ".join(text.split())
