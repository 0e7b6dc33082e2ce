"""The three-way planner: table tests of each rule, then properties over random states."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from musicsync.client.folder.plan import (Conflict, Download, LocalMove, MassDelete, Options,
                                          RemoteMove, Upload, conflict_name, plan,
                                          sequence_moves, settled_base, unique_songs)

from .folder_helpers import apply_plan


def test_a_new_local_song_is_uploaded_and_a_new_remote_song_downloaded():
    p = plan({}, {"a.mp3": "A"}, {"b.mp3": "B"})
    assert p.uploads == [Upload("a.mp3", "A")]
    assert p.downloads == [Download("b.mp3", "B")]
    assert not p.local_deletes and not p.remote_deletes and not p.conflicts


def test_nothing_changed_plans_nothing():
    state = {"x/a.mp3": "A", "b.flac": "B"}
    assert plan(state, state, state).is_empty()


def test_a_song_edited_in_place_locally_is_one_upload_that_replaces_the_old():
    p = plan({"a.mp3": "A"}, {"a.mp3": "A2"}, {"a.mp3": "A"})
    assert p.uploads == [Upload("a.mp3", "A2", replaces="A")]
    assert not p.remote_deletes and not p.downloads


def test_a_song_replaced_on_the_server_is_downloaded_over_the_unchanged_local_file():
    p = plan({"a.mp3": "A"}, {"a.mp3": "A"}, {"a.mp3": "A2"})
    assert p.downloads == [Download("a.mp3", "A2", replaces_local=True)]
    assert not p.local_deletes and not p.uploads


def test_a_local_rename_is_a_remote_move_without_upload():
    p = plan({"old/a.mp3": "A"}, {"new/b.mp3": "A"}, {"old/a.mp3": "A"})
    assert p.remote_moves == [RemoteMove("A", "old/a.mp3", "new/b.mp3")]
    assert not p.uploads and not p.remote_deletes


def test_a_remote_move_is_a_local_move_without_download():
    p = plan({"a.mp3": "A"}, {"a.mp3": "A"}, {"Artist/a.mp3": "A"})
    assert p.local_moves == [LocalMove("A", "a.mp3", "Artist/a.mp3")]
    assert not p.downloads and not p.local_deletes


def test_a_local_delete_deletes_on_the_server_and_a_remote_delete_locally():
    base = {"a.mp3": "A", "b.mp3": "B", "c.mp3": "C", "d.mp3": "D"}
    p = plan(base, {"b.mp3": "B", "c.mp3": "C", "d.mp3": "D"},
             {"a.mp3": "A", "c.mp3": "C", "d.mp3": "D"})
    assert p.remote_deletes == ["a.mp3"]
    assert p.local_deletes == ["b.mp3"]


def test_a_delete_against_an_edit_keeps_the_edited_song():
    p = plan({"a.mp3": "A"}, {}, {"a.mp3": "A2"})
    assert p.downloads == [Download("a.mp3", "A2")]
    assert not p.remote_deletes
    p = plan({"a.mp3": "A"}, {"a.mp3": "A2"}, {})
    assert p.uploads == [Upload("a.mp3", "A2")]
    assert not p.local_deletes


def test_a_delete_against_a_move_keeps_the_moved_song():
    p = plan({"a.mp3": "A"}, {}, {"b.mp3": "A"})
    assert p.downloads == [Download("b.mp3", "A")] and not p.remote_deletes


def test_both_sides_editing_one_song_keeps_both_with_the_remote_one_renamed():
    p = plan({"a.mp3": "A"}, {"a.mp3": "L"}, {"a.mp3": "R"})
    assert p.conflicts == [Conflict("a.mp3", "L", "R", "a (conflict).mp3")]
    assert p.target == {"a.mp3": "L", "a (conflict).mp3": "R"}
    assert p.remote_moves == [RemoteMove("R", "a.mp3", "a (conflict).mp3")]
    assert p.uploads == [Upload("a.mp3", "L")]
    assert p.downloads == [Download("a (conflict).mp3", "R")]
    assert not p.local_deletes and not any(d.replaces_local for d in p.downloads)


def test_a_first_sync_is_the_union_and_a_name_taken_twice_keeps_both():
    local = {"a.mp3": "A", "same.mp3": "L"}
    remote = {"b.mp3": "B", "same.mp3": "R"}
    p = plan({}, local, remote)
    assert p.target == {"a.mp3": "A", "b.mp3": "B", "same.mp3": "L",
                        "same (conflict).mp3": "R"}
    assert not p.local_deletes and not p.remote_deletes


def test_a_first_sync_files_a_song_held_at_two_paths_at_the_local_path():
    p = plan({}, {"Artist/Album/a.mp3": "A"}, {"a.mp3": "A"})
    assert p.remote_moves == [RemoteMove("A", "a.mp3", "Artist/Album/a.mp3")]
    assert not p.uploads and not p.downloads


def test_the_conflict_name_skips_names_taken_and_keeps_the_extension():
    assert conflict_name("x/Song.flac", set()) == "x/Song (conflict).flac"
    assert conflict_name("x/Song.flac", {"x/Song (conflict).flac"}) == "x/Song (conflict 2).flac"
    assert conflict_name("noext", set()) == "noext (conflict)"
    long = "é" * 126 + ".flac"  # 257 bytes once suffixed
    renamed = conflict_name(long, set())
    assert renamed.endswith(" (conflict).flac") and len(renamed.encode()) <= 255


def test_push_changes_only_the_server_and_pull_only_the_folder():
    base = {"gone-here.mp3": "G", "gone-there.mp3": "T"}
    local = {"new-here.mp3": "N", "gone-there.mp3": "T"}
    remote = {"new-there.mp3": "M", "gone-here.mp3": "G"}
    push = plan(base, local, remote, Options(direction="push"))
    assert not (push.downloads or push.local_deletes or push.local_moves)
    assert push.uploads == [Upload("new-here.mp3", "N")]
    assert push.remote_deletes == ["gone-here.mp3"]
    pull = plan(base, local, remote, Options(direction="pull"))
    assert not (pull.uploads or pull.remote_deletes or pull.remote_moves)
    assert pull.downloads == [Download("new-there.mp3", "M")]
    assert pull.local_deletes == ["gone-there.mp3"]


def test_no_delete_copies_a_deleted_song_back_instead():
    base = {"a.mp3": "A", "b.mp3": "B", "c.mp3": "C"}
    p = plan(base, {"b.mp3": "B", "c.mp3": "C"}, {"a.mp3": "A", "c.mp3": "C"},
             Options(no_delete=True))
    assert not p.local_deletes and not p.remote_deletes
    assert p.downloads == [Download("a.mp3", "A")] and p.uploads == [Upload("b.mp3", "B")]


def test_no_delete_still_lets_an_edit_replace_the_old_version():
    p = plan({"a.mp3": "A"}, {"a.mp3": "A2"}, {"a.mp3": "A"}, Options(no_delete=True))
    assert p.uploads == [Upload("a.mp3", "A2", replaces="A")] and not p.conflicts


def test_deleting_more_than_half_of_a_side_is_refused_with_the_way_to_allow_it():
    base = {f"{i}.mp3": str(i) for i in range(10)}
    local = {f"{i}.mp3": str(i) for i in range(4)}  # 6 of 10 deleted here
    with pytest.raises(MassDelete, match=r"delete 6 of the 10 songs on the server \(60%.*"
                                         r"--max-delete 61%.*--force"):
        plan(base, local, base)
    assert len(plan(base, local, base, Options(force=True)).remote_deletes) == 6
    assert len(plan(base, local, base, Options(max_delete=60)).remote_deletes) == 6


def test_the_mass_delete_guard_watches_the_folder_too():
    base = {f"{i}.mp3": str(i) for i in range(4)}
    with pytest.raises(MassDelete, match="3 of the 4 songs in this folder"):
        plan(base, base, {"0.mp3": "0"})


def test_deleting_the_only_song_is_not_a_mass_delete_but_two_of_two_is():
    assert plan({"a.mp3": "A"}, {}, {"a.mp3": "A"}).remote_deletes == ["a.mp3"]
    with pytest.raises(MassDelete):
        plan({"a.mp3": "A", "b.mp3": "B"}, {}, {"a.mp3": "A", "b.mp3": "B"})


def test_a_state_holding_one_song_twice_is_refused_and_unique_songs_picks_one():
    with pytest.raises(ValueError, match="twice"):
        plan({}, {"a.mp3": "A", "b.mp3": "A"}, {})
    kept, extras = unique_songs({"a.mp3": "A", "b.mp3": "A", "c.mp3": "C"}, {"b.mp3": "A"})
    assert kept == {"b.mp3": "A", "c.mp3": "C"} and extras == [("a.mp3", "b.mp3")]


def test_settled_base_keeps_the_old_song_where_the_sides_still_differ():
    base = {"a.mp3": "A", "b.mp3": "B"}
    # a one-way run: the folder moved A to c.mp3, the server still has it at a.mp3
    assert settled_base(base, {"c.mp3": "A", "b.mp3": "B"}, {"a.mp3": "A", "b.mp3": "B"}) \
        == base
    assert settled_base(base, {"c.mp3": "A"}, {"c.mp3": "A"}) == {"c.mp3": "A"}


def test_moves_are_sequenced_so_each_target_is_free_and_a_swap_goes_through_a_third_name():
    swap = [RemoteMove("A", "a.mp3", "b.mp3"), RemoteMove("B", "b.mp3", "a.mp3")]
    chain = [RemoteMove("C", "c.mp3", "d.mp3"), RemoteMove("D", "d.mp3", "e.mp3")]
    ordered = sequence_moves(swap + chain, {"a.mp3", "b.mp3", "c.mp3", "d.mp3"})
    state = {"a.mp3": "A", "b.mp3": "B", "c.mp3": "C", "d.mp3": "D"}
    for m in ordered:
        assert m.new_path not in state and state[m.old_path] == m.sha256
        state[m.new_path] = state.pop(m.old_path)
    assert state == {"b.mp3": "A", "a.mp3": "B", "d.mp3": "C", "e.mp3": "D"}
    assert "a (moving).mp3" in {m.new_path for m in ordered}


# -- properties -------------------------------------------------------------------------

PATHS = ["a.mp3", "b.mp3", "x/a.mp3", "x/c.mp3", "y/d.mp3", "a (conflict).mp3"]
SHAS = list("ABCDEFGH")


@st.composite
def states(draw):
    """A base and two sides derived from it with random edits, moves, deletes, adds."""
    def side(start: dict[str, str]) -> dict[str, str]:
        paths = draw(st.lists(st.sampled_from(PATHS), unique=True, max_size=len(PATHS)))
        shas = draw(st.lists(st.sampled_from(SHAS), unique=True, min_size=len(paths),
                             max_size=len(paths)))
        keep = draw(st.booleans())
        return dict(start) if keep and not paths else dict(zip(paths, shas))
    base = side({})
    return base, side(base), side(base)


OPTIONS = st.builds(Options, direction=st.sampled_from(["both", "push", "pull"]),
                    no_delete=st.booleans(), force=st.just(True))


@settings(max_examples=400, deadline=None)
@given(states(), OPTIONS)
def test_applying_a_plan_never_overwrites_and_loses_only_what_was_deleted(s, options):
    base, local, remote = s
    p = plan(base, local, remote, options)
    new_local, new_remote = apply_plan(p, local, remote)  # asserts no silent overwrite
    after = set(new_local.values()) | set(new_remote.values())
    for sha in set(local.values()) | set(remote.values()):
        deleted = sha in base.values() and (sha not in local.values()
                                            or sha not in remote.values())
        assert sha in after or (deleted and not options.no_delete) or \
            (deleted and options.no_delete and _replaced(sha, base, local, remote)), sha
    # a song changed since the base on one side is never deleted or replaced there
    for side, new in ((local, new_local), (remote, new_remote)):
        for path, sha in side.items():
            if base.get(path) != sha:
                assert sha in new.values()
    if options.direction == "push":
        assert new_local == local
    if options.direction == "pull":
        assert new_remote == remote
    if options.no_delete:  # only songs the other side replaced by an edit go
        for path in p.local_deletes:
            assert _replaced(local[path], base, local, remote)
        for path in p.remote_deletes:
            assert _replaced(remote[path], base, local, remote)
    if not base:
        assert not p.local_deletes and not p.remote_deletes
        assert set(local.values()) | set(remote.values()) <= after


def _replaced(sha, base, local, remote):
    """The song was edited in place (another song now at its base path) on a side
    that dropped it."""
    path = next(p for p, s in base.items() if s == sha)
    return any(sha not in side.values() and side.get(path) is not None
               and side[path] not in base.values() for side in (local, remote))


@settings(max_examples=400, deadline=None)
@given(states(), st.booleans())
def test_a_two_way_sync_makes_both_sides_equal_and_a_second_plan_is_empty(s, no_delete):
    base, local, remote = s
    p = plan(base, local, remote, Options(no_delete=no_delete, force=True))
    new_local, new_remote = apply_plan(p, local, remote)
    assert new_local == new_remote == p.target
    again = plan(settled_base(base, new_local, new_remote), new_local, new_remote)
    assert again.is_empty() and not again.conflicts


@settings(max_examples=300, deadline=None)
@given(states(), st.sampled_from(["push", "pull"]))
def test_a_one_way_sync_then_a_two_way_sync_converges(s, direction):
    base, local, remote = s
    first = plan(base, local, remote, Options(direction=direction, force=True))
    local, remote = apply_plan(first, local, remote)
    base = settled_base(base, local, remote)
    second = plan(base, local, remote, Options(force=True))
    local, remote = apply_plan(second, local, remote)
    assert local == remote
