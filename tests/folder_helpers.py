"""Helpers of the folder-sync tests: songs on disk, and a plan applied to plain states."""

from __future__ import annotations

import os
from pathlib import Path

from musicsync.client.folder.plan import Plan

from .helpers import sha
from .transfer import wav_bytes


def song(seed: str) -> bytes:
    """A small valid WAV file, different for each seed."""
    return wav_bytes(0.05, salt=seed.encode())


def write(root: Path, relative: str, data: bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def touch_later(path: Path) -> None:
    """Moves the file's mtime one second on, as an edit would."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def apply_plan(plan: Plan, local: dict[str, str], remote: dict[str, str]
               ) -> tuple[dict[str, str], dict[str, str]]:
    """Both states after the plan, checking that nothing is written over a file the
    plan does not say it replaces (deletes, then moves, then transfers)."""
    return (_apply(local, plan.local_deletes, [(m.old_path, m.new_path) for m in plan.local_moves],
                   [(d.path, d.sha256, d.replaces_local) for d in plan.downloads]),
            _apply(remote, plan.remote_deletes,
                   [(m.old_path, m.new_path) for m in plan.remote_moves],
                   [(u.path, u.sha256, u.replaces) for u in plan.uploads]))


def _apply(state, deletes, moves, transfers):
    state = dict(state)
    for path in deletes:
        assert path in state, f"deletes {path}, which is not there"
        del state[path]
    moving = {old: state.pop(old) for old, _ in moves}
    for _, new in moves:
        assert new not in state, f"a move goes over {new}"
    for old, new in moves:
        state[new] = moving[old]
    for path, content, replaces in transfers:
        if path in state:
            assert replaces, f"a transfer goes over {path} without replacing it"
            if isinstance(replaces, str):
                assert state[path] == replaces
        else:
            assert not replaces, f"a transfer replaces {path}, which is not there"
        state[path] = content
    return state
