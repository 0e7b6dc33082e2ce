"""Server paths and the names a local file system can hold."""

from __future__ import annotations

import pytest

from musicsync.client.folder.names import (NameMap, NameRules, Unstorable, local_path,
                                           server_path_problem)

WINDOWS = NameRules("windows", 255, "utf16")
POSIX = NameRules("posix", 255, "utf8")


@pytest.mark.parametrize("server, local", [
    ("AC:DC/Back in Black?.mp3", "AC：DC/Back in Black？.mp3"),
    ('a<b>c"d|e*f\\g.flac', 'a＜b＞c＂d｜e＊f＼g.flac'),
    ("CON.mp3", "CON_.mp3"),
    ("Artist/nul", "Artist/nul_"),
    ("lpt1.tar.mp3", "lpt1_.tar.mp3"),
    ("COM10.mp3", "COM10.mp3"),  # not reserved
    ("Dr. Dre feat. .../x.mp3", "Dr. Dre feat. ..．/x.mp3"),
    ("Album /x.mp3", "Album\u3000/x.mp3"),
    ("Café/ok.mp3", "Café/ok.mp3"),
])
def test_windows_names_map_to_lookalikes_and_back(server, local):
    names = NameMap(WINDOWS)
    assert names.to_local(server) == local
    assert names.to_server(local) == server
    assert NameMap(WINDOWS, names.to_server_names).to_server(local) == server  # from the index


def test_on_posix_only_over_long_names_change():
    names = NameMap(POSIX)
    assert names.to_local("AC:DC/CON.mp3") == "AC:DC/CON.mp3"
    assert names.to_server_names == {}


def test_a_name_too_long_here_is_shortened_apart_from_its_neighbours_and_maps_back():
    rules = NameRules("macos", 255, "utf8")  # NFD: 'é' takes 3 bytes, not 2
    first, second = "é" * 120 + "1.flac", "é" * 120 + "2.flac"
    assert server_path_problem(first) is None  # 247 bytes: the server takes it
    names = NameMap(rules)
    a, b = names.to_local(f"x/{first}"), names.to_local(f"x/{second}")
    assert a != b and a.endswith(".flac") and b.endswith(".flac")
    assert all(rules.length(segment) <= 255 for segment in (a + "/" + b).split("/"))
    assert names.to_server(a) == f"x/{first}" and names.to_server(b) == f"x/{second}"


def test_a_file_genuinely_named_with_a_lookalike_is_not_changed_back():
    names = NameMap(WINDOWS)
    assert names.to_server("AC：DC.mp3") == "AC：DC.mp3"


@pytest.mark.parametrize("path, problem", [
    ("", "empty"), ("/abs.mp3", "absolute"), ("a//b.mp3", "segment"),
    ("a/../b.mp3", "segment"), ("a\tb.mp3", "control"), ("x" * 256, "longer than 255"),
    ("Cafe\u0301.mp3", "NFC"),
])
def test_a_path_the_server_refuses_is_unstorable_with_the_reason(path, problem):
    assert problem in server_path_problem(path)
    with pytest.raises(Unstorable, match=problem):
        local_path(path, WINDOWS)


def test_a_scan_view_reports_local_names_the_server_would_refuse():
    names = NameMap(NameRules("windows", 255, "utf16"))
    long_name = "ü" * 200 + ".mp3"  # fits Windows (204 units), not the server (404 bytes)
    view, refused = names.server_view({"ok.mp3": "A", long_name: "B"})
    assert view == {"ok.mp3": "A"}
    assert refused == [(long_name, "a folder or file name is longer than 255 bytes")]
