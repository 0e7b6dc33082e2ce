"""`musicsync sync DIR` and playlists: each of the user's playlists as
DIR/Playlists/<name>.m3u8 with paths relative to that folder, and edits of those files
read back (merged with the server's changes made meanwhile). A real server on loopback,
real folders, the CLI run as a person runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from musicsync.client import Client

from .client_support import Cli, target_of
from .conftest import PASSWORD
from .folder_helpers import sha, song, write


async def sync(cli: Cli, folder: Path, *options: str) -> dict:
    """`musicsync sync folder --json ...` that succeeds: its summary."""
    folder.mkdir(parents=True, exist_ok=True)
    code, out, err = await cli("sync", str(folder), "--json", *options)
    assert code == 0, f"exit {code}\n{out}\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def songs_of(m3u8: Path) -> list[Path]:
    """The files a playlist file names, resolved as a player resolves them."""
    return [(m3u8.parent / line).resolve() for line in m3u8.read_text("utf-8").splitlines()
            if line and not line.startswith("#")]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under DIR/Playlists: its bytes and mtime_ns."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in (folder / "Playlists").iterdir()}


NAMES = ("Björk/Debut/01 Human.wav", "Björk/Debut/02 Venus.wav", "Other/Song.wav",
         "Other/Last.wav")


@pytest.fixture
async def music(logged_in, tmp_path) -> Path:
    """A folder of four songs, synced (so the library holds them)."""
    one = tmp_path / "one"
    for name in NAMES:
        write(one, name, song(name))
    assert (await sync(logged_in, one, "--no-playlists"))["uploaded"] == 4
    return one


H = {name: sha(song(name)) for name in NAMES}
HUMAN, VENUS, OTHER, LAST = (H[n] for n in NAMES)


async def test_a_server_playlist_becomes_an_m3u8_whose_relative_paths_find_the_songs(
        logged_in, library, music, tmp_path):
    await library.playlists.create("Road/Trip", [VENUS, OTHER, VENUS])
    summary = await sync(logged_in, music)
    assert summary["playlists"] == [{"action": "write", "playlist": "Road/Trip",
                                     "file": "Playlists/Road／Trip.m3u8", "songs": 3}]
    written = music / "Playlists" / "Road／Trip.m3u8"
    assert written.read_text("utf-8") == (
        "#EXTM3U\n#EXTINF:-1,02 Venus\n../Björk/Debut/02 Venus.wav\n"
        "#EXTINF:-1,Song\n../Other/Song.wav\n#EXTINF:-1,02 Venus\n../Björk/Debut/02 Venus.wav\n")
    assert songs_of(written) == [(music / n).resolve() for n in (NAMES[1], NAMES[2], NAMES[1])]
    assert [sha(p.read_bytes()) for p in songs_of(written)] == [VENUS, OTHER, VENUS]
    assert not [p for p in (music / "Playlists").iterdir() if p.name.startswith(".")]
    # A second folder gets the songs and the playlist, resolving there too.
    two = tmp_path / "two"
    summary = await sync(logged_in, two)
    assert summary["downloaded"] == 4
    assert [sha(p.read_bytes()) for p in songs_of(two / "Playlists" / "Road／Trip.m3u8")] == [
        VENUS, OTHER, VENUS]


async def test_a_rerun_with_nothing_changed_rewrites_nothing(logged_in, library, music):
    await library.playlists.create("Mix", [HUMAN, OTHER])
    await library.playlists.create("Empty")
    await sync(logged_in, music)
    before = snapshot(music)
    assert set(before) == {"Mix.m3u8", "Empty.m3u8"}
    again = await sync(logged_in, music)
    assert again["playlists"] == []
    assert snapshot(music) == before
    # A song the server moves changes the file (its path), though not the playlist.
    await library.move(OTHER, "Moved/Song.wav")
    moved = await sync(logged_in, music)
    assert [a["file"] for a in moved["playlists"]] == ["Playlists/Mix.m3u8"]
    assert "../Moved/Song.wav" in (music / "Playlists" / "Mix.m3u8").read_text("utf-8")
    assert snapshot(music)["Empty.m3u8"] == before["Empty.m3u8"]


async def test_an_edit_of_the_file_reaches_the_server_and_another_folder(
        logged_in, library, music, tmp_path):
    made = await library.playlists.create("Mix", [HUMAN, VENUS, OTHER, LAST])
    two = tmp_path / "two"
    await sync(logged_in, music)
    await sync(logged_in, two)
    edited = music / "Playlists" / "Mix.m3u8"
    lines = edited.read_text("utf-8").splitlines()
    # Reordered (Last first), Venus's line removed, and a line naming nothing known.
    edited.write_text("\n".join(["#EXTM3U", lines[7], lines[8], lines[1], lines[2],
                                 "../Not/In the library.wav", lines[5], lines[6]]) + "\n",
                      encoding="utf-8")
    summary = await sync(logged_in, music)
    assert [(a["action"], a["songs"]) for a in summary["playlists"]] == [("send", 3)]
    assert {"path": "Playlists/Mix.m3u8", "reason": "names ../Not/In the library.wav, which "
            "is not in your library; left out"} in summary["skips"]
    assert (await library.playlists.get(made.id)).hashes == [LAST, HUMAN, OTHER]
    assert [sha(p.read_bytes()) for p in songs_of(edited)] == [LAST, HUMAN, OTHER]
    assert "Not/In the library" not in edited.read_text("utf-8")  # rewritten from the result
    summary = await sync(logged_in, two)
    assert [a["action"] for a in summary["playlists"]] == ["write"]
    assert (two / "Playlists" / "Mix.m3u8").read_text("utf-8") == edited.read_text("utf-8")
    assert (await sync(logged_in, music))["playlists"] == []


async def test_an_edit_of_the_file_merges_with_the_servers_edit_meanwhile(
        app, logged_in, library, music):
    made = await library.playlists.create("Mix", [HUMAN, VENUS, OTHER])
    await sync(logged_in, music)
    phone = Client(target_of(app))  # another device edits the playlist meanwhile
    try:
        await phone.login("alice", PASSWORD)
        await phone.playlists.save(await phone.playlists.get(made.id), [OTHER, HUMAN, VENUS,
                                                                         LAST])
    finally:
        await phone.close()
    edited = music / "Playlists" / "Mix.m3u8"
    text = edited.read_text("utf-8")
    edited.write_text(text.replace("#EXTINF:-1,02 Venus\n../Björk/Debut/02 Venus.wav\n", ""),
                      encoding="utf-8")  # Venus removed here
    summary = await sync(logged_in, music)
    assert [a["action"] for a in summary["playlists"]] == ["send"]
    merged = await library.playlists.get(made.id)
    assert merged.hashes == [OTHER, HUMAN, LAST]  # their reorder and append, my removal
    assert [sha(p.read_bytes()) for p in songs_of(edited)] == [OTHER, HUMAN, LAST]


async def test_a_new_m3u8_file_creates_a_playlist_of_its_name(logged_in, library, music):
    write(music, "Playlists/Fresh.m3u8",
          "#EXTM3U\n../Other/Last.wav\n../Björk/Debut/01 Human.wav\n".encode())
    summary = await sync(logged_in, music)
    assert summary["playlists"] == [{"action": "create", "playlist": "Fresh",
                                     "file": "Playlists/Fresh.m3u8", "songs": 2}]
    found = await library.playlists.find("Fresh")
    assert (await library.playlists.get(found.id)).hashes == [LAST, HUMAN]
    assert "#EXTINF:-1,Last" in (music / "Playlists" / "Fresh.m3u8").read_text("utf-8")
    assert (await sync(logged_in, music))["playlists"] == []


async def test_a_playlist_deleted_on_the_server_removes_its_file_into_the_trash(
        logged_in, library, music):
    made = await library.playlists.create("Gone", [HUMAN])
    await sync(logged_in, music)
    written = (music / "Playlists" / "Gone.m3u8").read_bytes()
    await library.playlists.delete(made.id)
    summary = await sync(logged_in, music)
    assert [(a["action"], a["file"]) for a in summary["playlists"]] == [
        ("remove", "Playlists/Gone.m3u8")]
    assert not (music / "Playlists" / "Gone.m3u8").exists()
    assert [p.read_bytes() for p in (music / ".musicsync" / "trash").rglob("Gone.m3u8")] == [
        written]
    assert await library.playlists.list() == []  # not made again from anything


async def test_a_file_deleted_here_is_written_again_and_the_playlist_stays(
        logged_in, library, music):
    await library.playlists.create("Keep", [HUMAN, VENUS])
    await sync(logged_in, music)
    (music / "Playlists" / "Keep.m3u8").unlink()
    summary = await sync(logged_in, music)
    assert [a["action"] for a in summary["playlists"]] == ["write"]
    assert [sha(p.read_bytes()) for p in songs_of(music / "Playlists" / "Keep.m3u8")] == [
        HUMAN, VENUS]
    assert [p.name for p in await library.playlists.list()] == ["Keep"]


async def test_a_dry_run_reports_the_playlists_and_changes_nothing(
        logged_in, library, music):
    made = await library.playlists.create("Mix", [HUMAN, VENUS])
    write(music, "Playlists/Fresh.m3u8", b"#EXTM3U\n../Other/Last.wav\n")
    code, out, err = await logged_in("sync", str(music), "--dry-run")
    assert code == 0, err
    assert "playlist  Playlists/Mix.m3u8: would be written (2 songs)" in out
    assert "playlist  Playlists/Fresh.m3u8: would create the playlist 'Fresh' (1 songs)" in out
    printed = out.splitlines()
    plan_line = next(i for i, line in enumerate(printed) if line.startswith("plan: "))
    assert plan_line > printed.index("playlist  Playlists/Mix.m3u8: would be written (2 songs)")
    assert sorted(p.name for p in (music / "Playlists").iterdir()) == ["Fresh.m3u8"]
    assert [p.name for p in await library.playlists.list()] == ["Mix"]
    summary = await sync(logged_in, music, "--dry-run")
    assert [a["action"] for a in summary["plan"]["playlists"]] == ["write", "create"]
    # The same file edited: a dry run says it would send it, and sends nothing.
    await sync(logged_in, music)
    (music / "Playlists" / "Mix.m3u8").write_text("#EXTM3U\n../Other/Last.wav\n", "utf-8")
    version = (await library.playlists.get(made.id)).version
    summary = await sync(logged_in, music, "--dry-run")
    assert [a["action"] for a in summary["playlists"]] == ["send"]
    assert (await library.playlists.get(made.id)).version == version
    assert (music / "Playlists" / "Mix.m3u8").read_text("utf-8") == \
        "#EXTM3U\n../Other/Last.wav\n"


async def test_no_playlists_leaves_them_alone(logged_in, library, music):
    await library.playlists.create("Mix", [HUMAN])
    write(music, "Playlists/Fresh.m3u8", b"#EXTM3U\n../Other/Last.wav\n")
    summary = await sync(logged_in, music, "--no-playlists")
    assert summary["playlists"] == []
    assert os.listdir(music / "Playlists") == ["Fresh.m3u8"]
    assert [p.name for p in await library.playlists.list()] == ["Mix"]


async def test_a_rename_on_the_server_renames_the_file_and_missing_songs_stay_as_comments(
        logged_in, library, music):
    made = await library.playlists.create("Old", [HUMAN, OTHER, LAST])
    await sync(logged_in, music)
    await library.playlists.update(made.id, name="New")
    await library.delete(OTHER)  # its entry stays in the playlist, missing
    summary = await sync(logged_in, music)
    assert (summary["deleted_local"], [(a["action"], a["file"]) for a in summary["playlists"]]
            ) == (1, [("write", "Playlists/New.m3u8")])
    assert sorted(os.listdir(music / "Playlists")) == ["New.m3u8"]
    renamed = music / "Playlists" / "New.m3u8"
    text = renamed.read_text("utf-8")
    assert "# missing from the library: ../Other/Song.wav\n" in text
    # An edit that keeps the missing line keeps the entry (moved Last first).
    lines = text.splitlines()
    renamed.write_text("\n".join(["#EXTM3U", *lines[-2:], *lines[1:-2]]) + "\n", "utf-8")
    summary = await sync(logged_in, music)
    assert [a["action"] for a in summary["playlists"]] == ["send"]
    assert (await library.playlists.get(made.id)).hashes == [LAST, HUMAN, OTHER]
