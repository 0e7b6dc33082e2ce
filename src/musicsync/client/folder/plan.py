"""The three-way sync planner: base, local and remote states in, actions out. Pure.

Every state is a map from a server path ('Artist/Album/01 Song.flac') to the
song's SHA-256, each hash at most once per map (the server keeps one entry per
content; `unique_songs` picks one local copy of a song held twice). The *base*
is what both sides held after the last sync.

The planner first settles a *target*, the library both sides should end with,
one song at a time by its content, then lists what each side must do to reach it:

- a song on both sides at one path stays; at two paths, the side that moved it
  since the base wins, and with no base (or both moved) the local path wins;
- a song on one side only is new there (not in the base: it is copied over),
  or the other side dropped it since the base: deleted if this side still has
  it where the base had it, kept (and copied back) if this side moved it: a
  delete against a change keeps the change;
- a song dropped where the same side now has other content at that path was
  replaced (edited in place): the new content takes its place, a replace;
- two songs wanting one path (both sides changed it, or a first sync found two
  different files there) are a conflict: the local song keeps the path, the
  remote one takes a free name with " (conflict)" (then " (conflict 2)", ...)
  before the extension, on both sides. Nothing is overwritten.

Directions: `push` only changes the server, `pull` only the folder; each brings
over that side's changes and leaves the other side's alone (they stay
unsettled in the base, see `settled_base`). `no_delete` deletes nothing
anywhere: a song deleted on one side since the base is copied back from the
other. A plan deleting more than `max_delete` percent of either side's songs is
refused (MassDelete) unless `force`, except a plan that deletes a single song.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

Direction = Literal["push", "pull", "both"]
DIRECTIONS = ("push", "pull", "both")
DEFAULT_MAX_DELETE = 50.0  # percent of a side's songs

CONFLICT_WORD = "conflict"


class MassDelete(Exception):
    """A plan deleting more than the allowed share of a side's songs, refused."""


@dataclass(frozen=True)
class Options:
    """How to plan: which sides may change, and how much may be deleted."""

    direction: Direction = "both"
    no_delete: bool = False
    max_delete: float = DEFAULT_MAX_DELETE  # percent of a side's songs, 0-100
    force: bool = False

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")
        if not 0 <= self.max_delete <= 100:
            raise ValueError("max_delete is a percentage between 0 and 100")


@dataclass(frozen=True)
class Upload:
    path: str
    sha256: str
    replaces: str | None = None  # the server's song this content takes the place of


@dataclass(frozen=True)
class Download:
    path: str
    sha256: str
    replaces_local: bool = False  # the folder's file at `path` (unchanged since the base) goes


@dataclass(frozen=True)
class RemoteMove:
    sha256: str
    old_path: str
    new_path: str


@dataclass(frozen=True)
class LocalMove:
    sha256: str
    old_path: str
    new_path: str


@dataclass(frozen=True)
class Conflict:
    """Both sides had different songs at `path`: the remote one moves to `renamed_to`."""

    path: str
    local_sha256: str
    remote_sha256: str
    renamed_to: str


@dataclass
class Plan:
    """What each side does, in this order: deletes, moves, then transfers.

    Deletes first free the paths moves and transfers go to; a move may target the
    old path of another move (a swap): the caller moves through a temporary name.
    """

    target: dict[str, str] = field(default_factory=dict)  # path -> sha, both sides' goal
    uploads: list[Upload] = field(default_factory=list)
    downloads: list[Download] = field(default_factory=list)
    local_deletes: list[str] = field(default_factory=list)
    remote_deletes: list[str] = field(default_factory=list)  # paths
    local_moves: list[LocalMove] = field(default_factory=list)
    remote_moves: list[RemoteMove] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"upload": len(self.uploads), "download": len(self.downloads),
                "delete_local": len(self.local_deletes),
                "delete_remote": len(self.remote_deletes),
                "move_local": len(self.local_moves), "move_remote": len(self.remote_moves),
                "conflict": len(self.conflicts)}

    def is_empty(self) -> bool:
        return not any(n for key, n in self.counts().items() if key != "conflict")


def unique_songs(files: Mapping[str, str], base: Mapping[str, str]
                 ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """One path per content: (path -> sha, [(extra copy, path kept)]).

    The copy at the base's path is kept, else the first path in sorted order; the
    server holds one entry per content, so the others are not synced.
    """
    base_paths = {sha: path for path, sha in base.items()}
    kept: dict[str, str] = {}
    for path in sorted(files):
        sha = files[path]
        if sha not in kept or path == base_paths.get(sha):
            kept[sha] = path
    extras = sorted((path, kept[sha]) for path, sha in files.items() if kept[sha] != path)
    return {path: sha for sha, path in kept.items()}, extras


def plan(base: Mapping[str, str], local: Mapping[str, str], remote: Mapping[str, str],
         options: Options = Options()) -> Plan:
    """The actions that bring both sides to one library (see the module docstring).

    Raises ValueError if a state holds a hash twice, MassDelete if the plan deletes
    too much (unless options.force).
    """
    local_at, remote_at, base_at = _inverse(local, "local"), _inverse(remote, "remote"), \
        _inverse(base, "base")
    claims: dict[str, list[tuple[str, str]]] = {}  # path -> [(side, sha)]

    def claim(path: str, sha: str, side: str) -> None:
        claims.setdefault(path, []).append((side, sha))

    for sha in local_at.keys() | remote_at.keys():
        lp, rp, bp = local_at.get(sha), remote_at.get(sha), base_at.get(sha)
        if lp is not None and rp is not None:
            if bp == lp and lp != rp:  # the server moved it
                claim(rp, sha, "remote")
            else:  # in place, the folder moved it, or both did (the folder wins)
                claim(lp, sha, "local")
        elif lp is not None:
            if bp is None or bp != lp or _kept(bp, remote, base_at, options):
                claim(lp, sha, "local")
        elif rp is not None:
            if bp is None or bp != rp or _kept(bp, local, base_at, options):
                claim(rp, sha, "remote")

    result = Plan()
    taken = set(claims) | set(local) | set(remote)
    for path in sorted(claims):
        wanted = claims[path]
        if len(wanted) == 1:
            result.target[path] = wanted[0][1]
            continue
        # Two songs want one path; the folder's keeps it (a local file is never
        # overwritten), the server's takes a new name.
        local_sha = next(sha for side, sha in wanted if side == "local")
        remote_sha = next(sha for side, sha in wanted if side == "remote")
        renamed = conflict_name(path, taken)
        taken.add(renamed)
        result.target[path] = local_sha
        result.target[renamed] = remote_sha
        result.conflicts.append(Conflict(path, local_sha, remote_sha, renamed))

    if options.direction != "push":
        _reach(result.target, local, base, result, side="local")
    if options.direction != "pull":
        _reach(result.target, remote, base, result, side="remote")
    _check_deletes(result, local, remote, options)
    return result


def _kept(base_path: str, other: Mapping[str, str], base_at: Mapping[str, str],
          options: Options) -> bool:
    """Whether a song the other side dropped since the base stays: with no_delete,
    unless that side replaced it by new content at its path (an edit, not a delete)."""
    now = other.get(base_path)
    return options.no_delete and (now is None or now in base_at)


def _inverse(state: Mapping[str, str], name: str) -> dict[str, str]:
    paths: dict[str, str] = {}
    for path, sha in state.items():
        if sha in paths:
            raise ValueError(f"the {name} state holds {sha} twice ({paths[sha]!r}, {path!r})")
        paths[sha] = path
    return paths


def _reach(target: dict[str, str], side_state: Mapping[str, str], base: Mapping[str, str],
           result: Plan, *, side: str) -> None:
    """Adds to `result` what `side` does to hold exactly `target`."""
    where = {sha: path for path, sha in side_state.items()}
    wanted = set(target.values())
    for path, sha in sorted(target.items()):
        current = side_state.get(path)
        if current == sha:
            continue
        if sha in where:
            move = (LocalMove if side == "local" else RemoteMove)(sha, where[sha], path)
            (result.local_moves if side == "local" else result.remote_moves).append(move)
            continue
        # The content at `path` is replaced only when it goes from the target and is
        # what the base had there (unchanged since); otherwise it is deleted or moved
        # out of the way first.
        replaces = current if current is not None and current not in wanted \
            and base.get(path) == current else None
        if side == "local":
            result.downloads.append(Download(path, sha, replaces_local=replaces is not None))
        else:
            result.uploads.append(Upload(path, sha, replaces=replaces))
    replaced = {d.path for d in result.downloads if d.replaces_local} if side == "local" \
        else {u.path for u in result.uploads if u.replaces}
    deletes = sorted(path for path, sha in side_state.items()
                     if sha not in wanted and path not in replaced)
    (result.local_deletes if side == "local" else result.remote_deletes).extend(deletes)


def _check_deletes(result: Plan, local: Mapping[str, str], remote: Mapping[str, str],
                   options: Options) -> None:
    if options.force:
        return
    for side, deletes, songs in (("in this folder", result.local_deletes, len(local)),
                                 ("on the server", result.remote_deletes, len(remote))):
        # A single deletion always passes: deleting the one song of one is not a mass delete.
        if len(deletes) > 1 and len(deletes) * 100 > options.max_delete * songs:
            share = len(deletes) * 100 / songs
            raise MassDelete(
                f"this sync would delete {len(deletes)} of the {songs} songs {side} "
                f"({share:.0f}%, more than the {options.max_delete:g}% allowed); nothing "
                f"was changed. If that is what you want, run again with --max-delete "
                f"{min(100, int(share) + 1)}% or --force")


def sequence_moves(moves: list[RemoteMove], taken: set[str]) -> list[RemoteMove]:
    """`moves` in an order where each target is free when its move runs: a move waits
    for the move out of its target, and a cycle (a swap) goes through a free
    " (moving)" name. `taken`: every path in use (not changed)."""
    pending = list(moves)
    taken = set(taken) | {m.new_path for m in moves}
    ordered: list[RemoteMove] = []
    while pending:
        sources = {m.old_path for m in pending}
        ready = [m for m in pending if m.new_path not in sources]
        if not ready:
            first = pending[0]
            hop = conflict_name(first.old_path, taken, "moving")
            taken.add(hop)
            ordered.append(RemoteMove(first.sha256, first.old_path, hop))
            pending[0] = RemoteMove(first.sha256, hop, first.new_path)
            continue
        for m in ready:
            pending.remove(m)
            ordered.append(m)
    return ordered


def conflict_name(path: str, taken: set[str] | frozenset[str],
                  word: str = CONFLICT_WORD) -> str:
    """`Song (conflict).flac`, `Song (conflict 2).flac`, ...: the first not in `taken`.

    The stem is shortened when the name would pass 255 bytes of UTF-8.
    """
    folder, slash, name = path.rpartition("/")
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    suffix_ext = f".{extension}" if extension else ""
    number = 1
    while True:
        tag = f" ({word})" if number == 1 else f" ({word} {number})"
        budget = 255 - len((tag + suffix_ext).encode("utf-8"))
        short = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
        candidate = f"{folder}{slash}{short}{tag}{suffix_ext}"
        if candidate not in taken:
            return candidate
        number += 1


def settled_base(base: Mapping[str, str], local: Mapping[str, str],
                 remote: Mapping[str, str], paths: set[str] | None = None) -> dict[str, str]:
    """The base after a (partial) sync: where both sides hold the same song it is
    that song, where neither holds anything it is nothing, and where they still
    differ (a one-way sync, a failed transfer) it stays what it was, so the next
    sync still sees that side's change. Only `paths` are looked at (None: all)."""
    result = dict(base)
    for path in (base.keys() | local.keys() | remote.keys()) if paths is None else paths:
        mine, theirs = local.get(path), remote.get(path)
        if mine is not None and mine == theirs:
            result[path] = mine
        elif mine is None and theirs is None:
            result.pop(path, None)
    # A song settled at a new path is no longer at an old one still unsettled.
    settled = {sha: path for path, sha in result.items()
               if local.get(path) == sha == remote.get(path)}
    return {path: sha for path, sha in result.items() if settled.get(sha, path) == path}
