"""`musicsync playlist ...` run as a person runs it, and client.playlists (the library):
M3U8 files imported and exported with paths relative to the file, songs matched by
their library path; a stale save merged with another device's edit."""

from __future__ import annotations

from musicsync.client import Client
from musicsync.client.playlists import merge

from .client_support import song_file, target_of
from .conftest import PASSWORD


async def upload_songs(library, folder, *paths: str) -> dict[str, str]:
    hashes = {}
    for path in paths:
        result = await library.upload(song_file(folder, path.replace("/", "_")), path=path)
        hashes[path] = result.entry.hash
    return hashes


async def test_an_m3u8_file_goes_in_and_comes_out_with_relative_paths(library, logged_in,
                                                                      tmp_path):
    music = tmp_path / "music"
    hashes = await upload_songs(library, tmp_path / "sources", "Björk/Debut/01 Human.wav",
                                "Björk/Debut/02 Venus.wav", "Other/Song.wav")
    lists = music / "Playlists"
    lists.mkdir(parents=True)
    (lists / "Road.m3u8").write_text(
        "\ufeff#EXTM3U\n#EXTINF:1,Björk - Venus\n../Björk/Debut/02 Venus.wav\n"
        "../not in the library.wav\n"
        f"{music / 'Other' / 'Song.wav'}\n"  # absolute, under the music folder
        "http://radio.example/stream\n"
        "../Björk/Debut/02 Venus.wav\n", encoding="utf-8")

    code, out, err = await logged_in("playlist", "import", str(lists / "Road.m3u8"),
                                     "--root", str(music))
    assert code == 0, err
    assert "created playlist 'Road' with 3 songs" in out
    assert "not in your library, left out: not in the library.wav" in err
    assert "left out: http://radio.example/stream" in err
    road = await library.playlists.find("Road")
    assert (await library.playlists.get(road.id)).hashes == [
        hashes["Björk/Debut/02 Venus.wav"], hashes["Other/Song.wav"],
        hashes["Björk/Debut/02 Venus.wav"]]

    code, out, _ = await logged_in("playlist", "ls")
    assert code == 0 and out == "Road\t3 songs\tversion 1\n"
    code, out, _ = await logged_in("playlist", "show", "Road")
    assert code == 0 and "   2  Other/Song.wav" in out

    exported = lists / "Road copy.m3u8"
    code, out, err = await logged_in("playlist", "export", "Road", str(exported),
                                     "--root", str(music))
    assert code == 0, err
    assert exported.read_text(encoding="utf-8") == (
        "#EXTM3U\n#EXTINF:1,02 Venus\n../Björk/Debut/02 Venus.wav\n"
        "#EXTINF:1,Song\n../Other/Song.wav\n#EXTINF:1,02 Venus\n../Björk/Debut/02 Venus.wav\n")
    # And back: the exported file makes the same playlist.
    code, out, err = await logged_in("playlist", "import", str(exported), "--root", str(music),
                                     "--name", "Again")
    assert code == 0 and err == ""
    again = await library.playlists.find("Again")
    assert (await library.playlists.get(again.id)).hashes == \
        (await library.playlists.get(road.id)).hashes
    # Importing over an existing playlist gives it the file's songs.
    (lists / "Road.m3u8").write_text("#EXTM3U\n../Other/Song.wav\n", encoding="utf-8")
    code, out, _ = await logged_in("playlist", "import", str(lists / "Road.m3u8"),
                                   "--root", str(music))
    assert code == 0 and "replaced the songs of playlist 'Road': 1 songs" in out
    assert (await library.playlists.get(road.id)).hashes == [hashes["Other/Song.wav"]]


async def test_export_marks_missing_songs_and_unknown_names_fail(library, logged_in, tmp_path):
    hashes = await upload_songs(library, tmp_path / "sources", "a.wav", "b.wav")
    await library.playlists.create("Gone", [hashes["a.wav"], hashes["b.wav"]])
    await library.delete(hashes["a.wav"])
    code, out, err = await logged_in("playlist", "export", "Gone", cwd=tmp_path)
    assert code == 0, err
    code, out, err = await logged_in("playlist", "export", "Gone", "--root", str(tmp_path))
    assert out.splitlines()[1].startswith("# missing from the library: ")
    assert out.splitlines()[-1].endswith("b.wav")
    code, _, err = await logged_in("playlist", "show", "Nope")
    assert code == 1 and "you have no playlist named 'Nope'" in err


async def test_a_save_over_another_devices_edit_merges_both(app, library, tmp_path):
    hashes = list((await upload_songs(library, tmp_path, "1.wav", "2.wav", "3.wav",
                                      "4.wav")).values())
    one, two, three, four = hashes
    laptop = Client(target_of(app))  # alice's second device
    try:
        await laptop.login("alice", PASSWORD)
        made = await library.playlists.create("Both", [one, two, three])
        base = await library.playlists.get(made.id)  # what this device saw
        await laptop.playlists.save(await laptop.playlists.get(base.id), [three, one, two])
        saved = await library.playlists.save(base, [one, three, four])  # stale: merged
        assert saved.hashes == [three, one, four]
        assert saved.version == 3
        assert (await laptop.playlists.get(base.id)).hashes == [three, one, four]
    finally:
        await laptop.close()


def test_merge_keeps_both_sides_changes():
    base = list("abcde")
    assert merge(base, list("abxcde"), list("eabcd")) == list("eabxcd")  # insert follows b
    assert merge(base, list("acde"), list("abcdef")) == list("acdef")  # removed b, they appended
    assert merge(base, list("abcde") + ["z"], list("abc")) == list("abcz")  # anchor gone: after c
    assert merge(base, list("bcde"), list("bcde")) == list("bcde")  # both removed a
    assert merge(base, list("aabcde"), list("xabcde")) == list("xaabcde")  # a twice
