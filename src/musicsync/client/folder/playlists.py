"""DIR/Playlists/: the user's playlists as .m3u8 files, written and read back.

After the songs are in step, each playlist is written as DIR/Playlists/<name>.m3u8
(the name made safe for the file system as songs' names are: names.local_path; a '/'
becomes its fullwidth lookalike), with `#EXTM3U`, `#EXTINF:-1,<file name>` and the
song's path relative to the Playlists folder (`../Artist/Album/01 Song.flac`); songs
missing from the library are comment lines (`# missing from the library: ../...`).
A file is written only when its text changes, through a hidden temporary file renamed
over it, so no player ever reads half a playlist.

The folder's index keeps, per file, the playlist's id and version, the entries it
last wrote and the written file's SHA-256/size/mtime. Each pass then decides:

- file as written, server unchanged (same version, songs at the same paths): nothing;
- file as written, server changed: written again;
- file edited since (its bytes differ from what was written): its songs (paths
  matched to the library's; unknown ones reported and left out) are what the user
  wants; `client.playlists.save(base=<entries last written>, wanted=<file's songs>)`
  sends them, merged with the server's changes made meanwhile (playlists.merge), and
  the file is written again from the result;
- playlist deleted on the server: its file goes to DIR/.musicsync/trash (kept with
  --no-delete); if the file was edited since, the edit wins: the playlist is made anew;
- file deleted by the user: written again. A deletion here never deletes a playlist
  on the server (a stray `rm` would lose it on every device): delete it from a player
  or the API, and the file goes from every folder;
- a new .m3u8 file: a playlist of its name (the file name without .m3u8) is created
  with its songs. A file named like a server playlist this folder has not written (a
  folder synced afresh) is not sent: the server's playlist is kept and the file goes
  to the trash, unless both hold the same songs.

Playlists are synced only with `--direction both` (push and pull leave them alone),
and not at all with `--no-playlists`. `--dry-run` reports what would be done.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import ClientError, NotSignedIn, ServerUnavailable
from ..m3u8 import parse as parse_line
from ..playlists import PlaylistSong, RemotePlaylist
from .echo import OwnChanges
from .index import FolderIndex, PlaylistFile
from .names import NameMap, Unstorable, local_path
from .trash import Trash

FOLDER = "Playlists"
SUFFIX = ".m3u8"
MISSING = "# missing from the library: "
FATAL = (ServerUnavailable, NotSignedIn)

Entry = tuple[str, str]  # (sha256, library path)


@dataclass(frozen=True)
class PlaylistAction:
    """One thing done (or, in a dry run, to be done) to a playlist or its file."""

    action: str  # write | send | create | remove | keep
    playlist: str
    file: str  # relative to DIR
    songs: int = 0
    note: str = ""

    _TEXT = {"write": "written ({songs} songs)",
             "send": "your edit sent to the server, merged with its changes ({songs} songs)",
             "create": "created the playlist {playlist!r} ({songs} songs)",
             "remove": "removed (deleted on the server; into .musicsync/trash)",
             "keep": "kept"}
    _DRY = {"write": "would be written ({songs} songs)",
            "send": "your edit would be sent to the server ({songs} songs)",
            "create": "would create the playlist {playlist!r} ({songs} songs)",
            "remove": "would be removed (deleted on the server)", "keep": "would be kept"}

    def line(self, dry_run: bool = False) -> str:
        text = (self._DRY if dry_run else self._TEXT)[self.action].format(
            songs=self.songs, playlist=self.playlist)
        return f"playlist  {self.file}: {text}{f' ({self.note})' if self.note else ''}"

    def as_json(self) -> dict:
        data = {"action": self.action, "playlist": self.playlist, "file": self.file,
                "songs": self.songs}
        if self.note:
            data["note"] = self.note
        return data


def file_name(name: str, names: NameMap) -> str:
    """The file name of playlist ``name`` in DIR/Playlists. Unstorable."""
    segment = unicodedata.normalize("NFC", name).replace("/", "\uff0f")
    if segment.startswith("."):  # not hidden
        segment = "\uff0e" + segment[1:]
    return local_path(segment + SUFFIX, names.rules)


def render(entries: list[Entry], library_at: Mapping[str, str], names: NameMap
           ) -> tuple[str, list[Entry]]:
    """The file's text for ``entries``, and the entries with each song's path now (the
    library's for songs it holds, the last known for missing ones)."""
    lines, now = ["#EXTM3U"], []
    for sha, last_path in entries:
        path = library_at.get(sha)
        where = f"../{_local(path or last_path, names)}"
        if path is None:
            lines.append(MISSING + where)
        else:
            lines.append(f"#EXTINF:-1,{_one_line(Path(path).stem)}")
            lines.append(where)
        now.append((sha, path or last_path))
    return "\n".join(lines) + "\n", now


def read_back(text: str, root: Path, names: NameMap, library: Mapping[str, str],
              remembered: list[Entry]) -> tuple[list[str], list[str]]:
    """The songs (sha256) a playlist file names, in order, and the lines naming no song of
    the library. A `# missing` line keeps its entry (matched by path with what was
    written); other comments are passed over."""
    folder = root / FOLDER
    held = set(library.values())
    missing = {path: sha for sha, path in remembered if sha not in held}
    wanted, unknown = [], []
    for raw in text.lstrip("\ufeff").splitlines():
        entry = raw.strip()
        is_missing = entry.startswith(MISSING)
        if is_missing:
            entry = entry[len(MISSING):].strip()
        elif not entry or entry.startswith("#"):
            continue
        found, _ = parse_line(entry, folder, root)
        server = names.to_server(unicodedata.normalize("NFC", found[0])) if found else None
        sha = (missing.get(server) if is_missing else library.get(server)) if server else None
        if sha is None:
            unknown.append(entry)
        else:
            wanted.append(sha)
    return wanted, unknown


def _local(server_path: str, names: NameMap) -> str:
    try:
        return names.to_local(server_path)
    except Unstorable:
        return server_path


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PlaylistSync:
    """One pass over DIR/Playlists (see the module docstring). ``library``: the library
    after the songs' sync, server path -> sha256."""

    def __init__(self, client, root: Path, index: FolderIndex, names: NameMap,
                 library: Mapping[str, str], trash: Trash, *, dry_run: bool = False,
                 no_delete: bool = False, own_changes: OwnChanges | None = None) -> None:
        self.client = client
        self.root = root
        self.folder = root / FOLDER
        self.index = index
        self.names = names
        self.library = dict(library)
        self.library_at = {sha: path for path, sha in library.items()}
        self.trash = trash
        self.dry_run = dry_run
        self.no_delete = no_delete
        self.own_changes = own_changes
        self.actions: list[PlaylistAction] = []
        self.failed: list[tuple[str, str]] = []
        self.skipped: list[tuple[str, str]] = []

    async def run(self) -> None:
        remote = {p.id: p for p in await self.client.playlists.list()}
        records = self.index.playlists()
        on_disk = self._files()
        targets = self._targets(remote)
        recorded_ids = {r.playlist_id for r in records.values()}
        taken: set[str] = set()  # files this pass dealt with
        for record in sorted(records.values(), key=lambda r: r.file):
            taken.add(record.file)
            playlist = remote.get(record.playlist_id)
            await self._guarded(record.file, self._recorded(
                record, playlist, targets.get(record.playlist_id), on_disk))
            if playlist is not None and record.playlist_id in targets:
                taken.add(targets[record.playlist_id])
        for playlist_id, playlist in sorted(remote.items()):
            if playlist_id in recorded_ids or playlist_id not in targets:
                continue
            target = targets[playlist_id]
            taken.add(target)
            await self._guarded(target, self._new_remote(playlist, target, on_disk))
        for file in sorted(set(on_disk) - taken):
            if file in records:
                continue
            await self._guarded(file, self._new_file(file, remote))

    async def _guarded(self, file: str, work) -> None:
        try:
            await work
        except FATAL:
            raise
        except (ClientError, OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "message", None) or getattr(exc, "strerror", None) or str(exc)
            self.failed.append((f"{FOLDER}/{file}", why))

    # -- the cases ------------------------------------------------------------------------

    async def _recorded(self, record: PlaylistFile, playlist: RemotePlaylist | None,
                        target: str | None, on_disk: dict[str, Path]) -> None:
        exists = record.file in on_disk
        edited = self._edit_of(record) if exists else None
        if playlist is None:  # deleted on the server
            if not exists:
                self._forget(record.file)
            elif edited is None:
                if self.no_delete:
                    self._did("keep", record.file, record.file, note="deleted on the server; "
                              "--no-delete keeps the file")
                    return
                self._did("remove", record.file, record.file)
                if not self.dry_run:
                    self.trash.put(f"{FOLDER}/{record.file}")
                    self._forget(record.file)
                    self._changed(self.folder / record.file)
            else:  # the edit wins over the deletion: made anew from the file
                self._forget(record.file)
                await self._create_from(record.file, edited, Path(record.file).stem,
                                        note="deleted on the server, but edited here")
            return
        if target is None:
            return  # its name cannot be a file here (reported once, in _targets)
        if edited is not None:
            base = RemotePlaylist(record.playlist_id, playlist.name, "", record.version,
                                  len(record.entries), 0, 0,
                                  [PlaylistSong(sha, path) for sha, path in record.entries])
            wanted, _ = self._wanted(record.file, edited, list(record.entries))
            self._did("send", playlist.name, record.file, len(wanted))
            if self.dry_run:
                return
            saved = await self.client.playlists.save(base, wanted)
            self._write(saved, target, replacing=record.file)
            return
        if playlist.version == record.version:
            entries = list(record.entries)
        else:
            entries = [(s.hash, s.path) for s in (await self.client.playlists.get(
                playlist.id)).songs]
        text, now = render(entries, self.library_at, self.names)
        if exists and target == record.file and _sha(text.encode()) == record.sha256:
            if playlist.version != record.version and not self.dry_run:  # same text
                self.index.put_playlist(PlaylistFile(
                    record.file, record.playlist_id, playlist.version, tuple(now),
                    record.sha256, record.size, record.mtime_ns))
            return  # the file already says it: nothing is rewritten
        self._write_entries(playlist, entries, target, replacing=record.file)

    async def _new_remote(self, playlist: RemotePlaylist, target: str,
                          on_disk: dict[str, Path]) -> None:
        full = await self.client.playlists.get(playlist.id)
        if target in on_disk:  # a file of its name this folder did not write
            text = self._read(self.folder / target)
            wanted, _ = read_back(text, self.root, self.names, self.library, [])
            if wanted == full.hashes:
                if not self.dry_run:
                    self._write(full, target, replacing=target)
                return
            self._did("write", full.name, target, len(full.songs),
                      note="the file here held other songs; it went to .musicsync/trash")
            if not self.dry_run:
                self.trash.put(f"{FOLDER}/{target}")
                self._write(full, target)
            return
        self._did("write", full.name, target, len(full.songs))
        if not self.dry_run:
            self._write(full, target)

    async def _new_file(self, file: str, remote: dict[int, RemotePlaylist]) -> None:
        name = unicodedata.normalize("NFC", Path(file).stem).strip()
        if any(p.name == name for p in remote.values()):
            self.skipped.append((f"{FOLDER}/{file}", f"a playlist named {name!r} is "
                                 "written to another file here; this one is left alone"))
            return
        await self._create_from(file, self._read(self.folder / file), name)

    async def _create_from(self, file: str, text: str, name: str, note: str = "") -> None:
        wanted, _ = self._wanted(file, text, [])
        self._did("create", name, file, len(wanted), note)
        if self.dry_run:
            return
        made = await self.client.playlists.create(name, wanted)
        made = await self.client.playlists.get(made.id)
        try:
            target = file_name(made.name, self.names)
        except Unstorable:
            target = file
        self._write(made, target, replacing=file)

    # -- files ----------------------------------------------------------------------------

    def _files(self) -> dict[str, Path]:
        """The .m3u8 files in DIR/Playlists (hidden and temporary ones passed over)."""
        try:
            entries = list(os.scandir(self.folder))
        except (FileNotFoundError, NotADirectoryError):
            return {}
        return {unicodedata.normalize("NFC", e.name): Path(e.path) for e in entries
                if e.name.lower().endswith(SUFFIX) and not e.name.startswith(".")
                and e.is_file(follow_symlinks=False)}

    def _targets(self, remote: dict[int, RemotePlaylist]) -> dict[int, str]:
        """Each server playlist's file name, two that would share one kept apart."""
        targets: dict[int, str] = {}
        seen: set[str] = set()
        for playlist_id, playlist in sorted(remote.items()):
            try:
                name = file_name(playlist.name, self.names)
                if name.casefold() in seen:
                    name = file_name(f"{playlist.name} ({playlist_id})", self.names)
            except Unstorable as exc:
                self.skipped.append((f"{FOLDER}/{playlist.name}{SUFFIX}",
                                     f"this folder cannot hold the file ({exc})"))
                continue
            seen.add(name.casefold())
            targets[playlist_id] = name
        return targets

    def _edit_of(self, record: PlaylistFile) -> str | None:
        """The file's text if it was edited since the sync wrote it, else None."""
        path = self.folder / record.file
        st = path.stat()
        if (st.st_size, st.st_mtime_ns) == (record.size, record.mtime_ns):
            return None
        data = path.read_bytes()
        if _sha(data) == record.sha256:
            return None  # touched, not changed
        return data.decode("utf-8")

    def _read(self, path: Path) -> str:
        return path.read_bytes().decode("utf-8")

    def _wanted(self, file: str, text: str, remembered: list[Entry]
                ) -> tuple[list[str], list[str]]:
        wanted, unknown = read_back(text, self.root, self.names, self.library, remembered)
        for entry in unknown:
            self.skipped.append((f"{FOLDER}/{file}", f"names {entry}, which is not in your "
                                                     "library; left out"))
        return wanted, unknown

    def _write(self, playlist: RemotePlaylist, target: str, *,
               replacing: str | None = None) -> None:
        """Writes ``playlist`` (fetched with its songs) as the caller reported."""
        entries = [(s.hash, s.path) for s in playlist.songs]
        self._write_entries(playlist, entries, target, replacing=replacing, quiet=True)

    def _write_entries(self, playlist: RemotePlaylist, entries: list[Entry], target: str, *,
                       replacing: str | None = None, quiet: bool = False) -> None:
        """Writes the file atomically (a hidden temporary file renamed over it) and
        remembers what was written; a file of the playlist's old name goes."""
        text, now = render(entries, self.library_at, self.names)
        if not quiet:
            self._did("write", playlist.name, target, len(entries))
        if self.dry_run:
            return
        data = text.encode("utf-8")
        path = self.folder / target
        self.folder.mkdir(exist_ok=True)
        temp = self.folder / f".{target}.musicsync-part"
        try:
            with open(temp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        st = path.stat()
        if replacing is not None and replacing != target and (self.folder / replacing).exists():
            self.trash.put(f"{FOLDER}/{replacing}")  # renamed on the server
            self._changed(self.folder / replacing)
            self.index.drop_playlist(replacing)
        self.index.put_playlist(PlaylistFile(target, playlist.id, playlist.version,
                                             tuple(now), _sha(data), st.st_size,
                                             st.st_mtime_ns))
        self._changed(path)

    def _forget(self, file: str) -> None:
        if not self.dry_run:
            self.index.drop_playlist(file)

    def _changed(self, path: Path) -> None:
        if self.own_changes is not None:
            self.own_changes.changed(path)

    def _did(self, action: str, playlist: str, file: str, songs: int = 0,
             note: str = "") -> None:
        self.actions.append(PlaylistAction(action, playlist, f"{FOLDER}/{file}", songs, note))
