"""Scanning a folder: audio only, hashed once, NFC names, the index kept."""

from __future__ import annotations

import os
import stat
import unicodedata

from musicsync.client.folder.index import FolderIndex, index_path
from musicsync.client.folder.scan import scan

from .folder_helpers import sha, song, touch_later, write


def test_scan_finds_songs_by_extension_and_content_and_passes_over_the_rest(tmp_path):
    root = tmp_path / "music"
    good = {"Artist/Album/01 a.wav": song("a"), "b.wav": song("b")}
    for relative, data in good.items():
        write(root, relative, data)
    write(root, "notes.txt", b"text")
    write(root, "fake.mp3", b"<html>not a song</html>")  # audio name, not audio bytes
    write(root, "cover.jpg", b"\xff\xd8\xff\xe0JFIF")
    write(root, ".hidden.wav", song("h"))
    write(root, ".trash/x.wav", song("t"))
    write(root, "down.wav.part", song("p"))
    write(root, "down.wav.crdownload", song("c"))
    write(root, "edit.wav~", song("e"))
    write(root, "Album/.abc.musicsync-part", song("m"))
    (root / "outside.wav").symlink_to(write(tmp_path, "elsewhere.wav", song("o")))
    with FolderIndex.open(root) as index:
        write(root, ".musicsync/inside.wav", song("i"))
        result = scan(root, index)
    assert result.songs() == {path: sha(data) for path, data in good.items()}
    assert result.seen == 3 and result.hashed == 2  # fake.mp3 was read, then dropped


def test_a_second_scan_hashes_nothing_and_a_touched_file_is_hashed_again(tmp_path):
    root = tmp_path / "music"
    paths = [write(root, f"d{i}/s{i}.wav", song(str(i))) for i in range(5)]
    with FolderIndex.open(root) as index:
        first = scan(root, index)
        assert first.hashed == 5 and first.bytes_hashed == sum(p.stat().st_size for p in paths)
        second = scan(root, index)
        assert second.hashed == 0 and second.bytes_hashed == 0
        assert second.songs() == first.songs()
        touch_later(paths[0])
        third = scan(root, index)
        assert third.hashed == 1
        paths[1].write_bytes(song("changed"))
        touch_later(paths[1])
        fourth = scan(root, index)
    assert fourth.hashed == 1 and fourth.songs()["d1/s1.wav"] == sha(song("changed"))


def test_a_vanished_file_leaves_the_index(tmp_path):
    root = tmp_path / "music"
    gone = write(root, "gone.wav", song("g"))
    write(root, "kept.wav", song("k"))
    with FolderIndex.open(root) as index:
        scan(root, index)
        gone.unlink()
        assert list(scan(root, index).songs()) == ["kept.wav"]
        assert list(index.files()) == ["kept.wav"]


def test_decomposed_names_come_out_composed(tmp_path):
    root = tmp_path / "music"
    nfd = unicodedata.normalize("NFD", "Beyoncé/Café.wav")
    write(root, nfd, song("c"))
    with FolderIndex.open(root) as index:
        result = scan(root, index)
        assert list(result.songs()) == ["Beyoncé/Café.wav"]
        assert result.files["Beyoncé/Café.wav"].disk == nfd
        assert scan(root, index).hashed == 0


def test_the_index_is_private_to_its_owner_and_keeps_one_device_id(tmp_path):
    root = tmp_path / "music"
    root.mkdir()
    with FolderIndex.open(root) as index:
        device = index.state().device_id
        index.update_state(server="localhost:50051", username="alice", cursor="42",
                           last_sync=1.5)
    assert stat.S_IMODE(os.stat(index_path(root)).st_mode) == 0o600
    with FolderIndex.open(root) as index:
        state = index.state()
    assert (state.device_id, state.server, state.username, state.cursor, state.last_sync) \
        == (device, "localhost:50051", "alice", "42", 1.5)
    assert len(device) == 32
