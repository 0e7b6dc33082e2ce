"""The folder's half of a plan on real files, and whole runs against an in-memory library.

`run` below is the flow of client/folder/__init__.py with the server's side as a
dict of path -> bytes; the end-to-end tests with a real server come with the CLI.
"""

from __future__ import annotations

import os

import pytest

from musicsync.client.folder.apply_local import LocalApplier, LocalChanged
from musicsync.client.folder.guard import open_folder
from musicsync.client.folder.ledger import Ledger
from musicsync.client.folder.names import NameMap, NameRules
from musicsync.client.folder.plan import (MassDelete, Options, plan, sequence_moves,
                                          unique_songs)
from musicsync.client.folder.scan import scan
from musicsync.client.folder.trash import Trash

from .folder_helpers import sha, song, write


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICSYNC_CONFIG_DIR", str(tmp_path / "config"))


def run(root, server: dict[str, bytes], options: Options = Options(), *, stop_after=None):
    """One sync of `root` with `server`; returns (plan, scan result). `stop_after` n
    local steps simulates a run killed there."""
    root.mkdir(exist_ok=True)
    folder, index = open_folder(root)
    with index:
        trash = Trash(folder.root)
        trash.purge()
        scanned = scan(folder.root, index)
        names = NameMap(NameRules.for_this_system(), index.names())
        base = {path: entry.sha256 for path, entry in index.base().items()}
        local, _ = names.server_view(scanned.songs())
        local, _ = unique_songs(local, base)
        remote = {path: sha(data) for path, data in server.items()}
        blobs = {sha(data): data for data in server.values()}
        for path, f in scanned.files.items():
            blobs[f.sha256] = (folder.root / f.disk).read_bytes()
        sizes = {digest: len(data) for digest, data in blobs.items()}
        p = plan(base, local, remote, options)
        ledger = Ledger(index, local, remote, sizes)
        applier = LocalApplier(folder.root, index, names, trash, ledger)
        steps = 0

        def step():
            nonlocal steps
            steps += 1
            if stop_after is not None and steps > stop_after:
                raise KeyboardInterrupt
        try:
            for path in p.local_deletes:
                step(); applier.delete(path)
            for path in p.remote_deletes:
                step(); del server[path]; ledger.remote_changed(path, None)
            assert not applier.move_all(p.local_moves)
            for m in sequence_moves(p.remote_moves, set(server)):
                step(); server[m.new_path] = server.pop(m.old_path)
                ledger.remote_changed(m.old_path, None)
                ledger.remote_changed(m.new_path, m.sha256)
            for d in p.downloads:
                step()
                temp = applier.temp_path(d.path, d.sha256)
                temp.write_bytes(blobs[d.sha256])
                applier.place(temp, d.path, d.sha256, replaces_local=d.replaces_local)
            for u in p.uploads:
                step()
                if u.replaces:
                    old = next(k for k, v in server.items() if sha(v) == u.replaces)
                    del server[old]
                server[u.path] = blobs[u.sha256]
                ledger.remote_changed(u.path, u.sha256)
        except KeyboardInterrupt:
            return p, scanned
        ledger.settle_all()
    return p, scanned


def tree(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".musicsync" not in p.parts}


def test_two_folders_converge_through_the_library_nested_folders_included(tmp_path):
    one, two, server = tmp_path / "one", tmp_path / "two", {}
    write(one, "Artist/Album/01.wav", song("1"))
    write(one, "Artist/Album/02.wav", song("2"))
    write(two, "Other/03.wav", song("3"))
    for root in (one, two, one):
        run(root, server)
    assert tree(one) == tree(two) == server
    assert set(server) == {"Artist/Album/01.wav", "Artist/Album/02.wav", "Other/03.wav"}
    p, scanned = run(two, server)  # nothing changed: nothing hashed, nothing to do
    assert p.is_empty() and scanned.hashed == 0


def test_a_deletion_reaches_the_other_folder_through_its_trash(tmp_path):
    one, two, server = tmp_path / "one", tmp_path / "two", {}
    for i in range(3):
        write(one, f"A/{i}.wav", song(str(i)))
    write(one, "B/solo.wav", song("solo"))
    run(one, server), run(two, server)
    (one / "B/solo.wav").unlink()
    run(one, server), run(two, server)
    assert "B/solo.wav" not in server and not (two / "B").exists()  # empty folder gone
    trashed = list((two / ".musicsync/trash").rglob("solo.wav"))
    assert [p.read_bytes() for p in trashed] == [song("solo")]


def test_a_move_on_one_folder_moves_the_file_on_the_other(tmp_path):
    one, two, server = tmp_path / "one", tmp_path / "two", {}
    write(one, "a.wav", song("a"))
    write(one, "b.wav", song("b"))
    run(one, server), run(two, server)
    os.rename(one / "a.wav", one / "tmp.wav")  # a swap: a cycle of moves
    os.rename(one / "b.wav", one / "a.wav")
    os.rename(one / "tmp.wav", one / "b.wav")
    p, _ = run(one, server)
    assert len(p.remote_moves) == 2 and not p.uploads
    p, _ = run(two, server)
    assert len(p.local_moves) == 2 and not p.downloads
    assert tree(two) == {"a.wav": song("b"), "b.wav": song("a")} == server


def test_an_edit_is_a_replace_that_keeps_the_old_version_in_the_trash(tmp_path):
    one, two, server = tmp_path / "one", tmp_path / "two", {}
    write(one, "x/s.wav", song("v1"))
    run(one, server), run(two, server)
    (one / "x/s.wav").write_bytes(song("v2"))
    p, _ = run(one, server)
    assert [(u.path, u.replaces) for u in p.uploads] == [("x/s.wav", sha(song("v1")))]
    p, _ = run(two, server)
    assert [d.replaces_local for d in p.downloads] == [True]
    assert tree(two) == {"x/s.wav": song("v2")}
    assert [f.read_bytes() for f in (two / ".musicsync/trash").rglob("*.wav")] == [song("v1")]


def test_a_name_taken_by_different_content_keeps_both_files(tmp_path):
    one, server = tmp_path / "one", {"same.wav": song("remote")}
    write(one, "same.wav", song("local"))
    p, _ = run(one, server)
    assert [c.renamed_to for c in p.conflicts] == ["same (conflict).wav"]
    assert tree(one) == {"same.wav": song("local"), "same (conflict).wav": song("remote")}
    assert server == tree(one)


def test_a_file_written_where_a_download_lands_keeps_both(tmp_path):
    root = tmp_path / "one"
    root.mkdir()
    folder, index = open_folder(root)
    with index:
        names = NameMap(NameRules("posix"))
        ledger = Ledger(index, {}, {"new.wav": sha(song("r"))}, {})
        applier = LocalApplier(folder.root, index, names, Trash(root), ledger)
        temp = applier.temp_path("new.wav", sha(song("r")))
        temp.write_bytes(song("r"))
        write(root, "new.wav", song("user"))  # appeared after the scan
        got = applier.place(temp, "new.wav", sha(song("r")))
    assert got == "new (conflict).wav"
    assert tree(root) == {"new.wav": song("user"), "new (conflict).wav": song("r")}


def test_a_file_changed_since_the_scan_is_not_deleted(tmp_path):
    root = tmp_path / "one"
    write(root, "s.wav", song("s"))
    folder, index = open_folder(root)
    with index:
        result = scan(root, index)
        local = result.songs()
        ledger = Ledger(index, local, {}, {})
        applier = LocalApplier(folder.root, index, NameMap(NameRules("posix")),
                               Trash(root), ledger)
        (root / "s.wav").write_bytes(song("edited"))
        with pytest.raises(LocalChanged):
            applier.delete("s.wav")
    assert (root / "s.wav").read_bytes() == song("edited")


def test_a_mass_deletion_stops_before_changing_anything(tmp_path):
    one, server = tmp_path / "one", {}
    for i in range(4):
        write(one, f"{i}.wav", song(str(i)))
    run(one, server)
    for i in range(3):
        (one / f"{i}.wav").unlink()
    with pytest.raises(MassDelete, match="3 of the 4 songs on the server"):
        run(one, server)
    assert len(server) == 4
    run(one, server, Options(force=True))
    assert list(server) == ["3.wav"]


def test_an_interrupted_run_resumes_with_only_what_is_left(tmp_path):
    one, two, server = tmp_path / "one", tmp_path / "two", {}
    for i in range(4):
        write(one, f"{i}.wav", song(str(i)))
    run(one, server)
    p, _ = run(two, server, stop_after=2)  # killed after two of four downloads
    assert len(p.downloads) == 4 and len(tree(two)) == 2
    p, scanned = run(two, server)
    assert len(p.downloads) == 2 and not p.uploads and not p.conflicts
    assert scanned.hashed == 0  # the placed files were indexed as they landed
    assert tree(two) == server
