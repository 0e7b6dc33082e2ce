"""`sync --watch` run in this process (folder.watching.Watcher), to see what starts its
passes: a real server on loopback, a real folder, real file-system notifications."""

from __future__ import annotations

import asyncio

from musicsync.client import Client
from musicsync.client.folder.report import Reporter
from musicsync.client.folder.session import Account, PassOptions
from musicsync.client.folder.watching import Watcher

from .client_support import signed_in, target_of
from .folder_helpers import song, write
from .helpers import wait_until


async def test_the_notices_of_a_passs_own_downloads_moves_and_deletes_start_no_pass(
        app, tmp_path):
    library = await signed_in(app)
    client = Client(target_of(app), tokens=library.tokens)
    root = tmp_path / "music"
    root.mkdir()
    watcher = Watcher(client, str(root), Account(target_of(app), "alice"), PassOptions(),
                      Reporter(quiet=True))
    running = asyncio.create_task(watcher.run())
    try:
        await wait_until(lambda: watcher.passes == 1, "the first pass")
        song_a = await library.upload(write(tmp_path / "src", "a.wav", song("a")),
                                      path="Album/a.wav")
        await wait_until(lambda: (root / "Album/a.wav").exists(), "the download")
        await library.move(song_a.hash, "Other/a.wav")
        await wait_until(lambda: (root / "Other/a.wav").exists()
                         and not (root / "Album").exists(), "the move")
        await library.delete(song_a.hash)
        await wait_until(lambda: not (root / "Other").exists(), "the deletion")
        # A change of the user's own: its notice comes after those of the pass's writes.
        (root / "notes.txt").write_text("not a song")
        await wait_until(lambda: str(root / "notes.txt") in watcher.noticed,
                         "the notice of the user's change")
        assert list(watcher.noticed) == [str(root / "notes.txt")]
    finally:
        watcher.stop.set()
        assert await asyncio.wait_for(running, 30) == 0
        await client.close()
        await library.close()


async def test_a_playlist_made_on_the_server_reaches_a_watched_folder(app, tmp_path):
    library = await signed_in(app)
    client = Client(target_of(app), tokens=library.tokens)
    root = tmp_path / "music"
    root.mkdir()
    song_a = await library.upload(write(tmp_path / "src", "a.wav", song("a")), path="a.wav")
    watcher = Watcher(client, str(root), Account(target_of(app), "alice"), PassOptions(),
                      Reporter(quiet=True))
    running = asyncio.create_task(watcher.run())
    try:
        await wait_until(lambda: watcher.passes == 1 and (root / "a.wav").exists(),
                         "the first pass")
        # Only a playlist change: no song event starts the pass that writes its file.
        await library.playlists.create("Evening", [song_a.hash])
        playlist = root / "Playlists" / "Evening.m3u8"
        await wait_until(playlist.exists, "the playlist's file", timeout=30)
        assert "../a.wav" in playlist.read_text("utf-8").splitlines()
    finally:
        watcher.stop.set()
        assert await asyncio.wait_for(running, 30) == 0
        await client.close()
        await library.close()
