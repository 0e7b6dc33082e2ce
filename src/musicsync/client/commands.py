"""The desktop commands' arguments (`musicsync login`, `ls`, `push`, ...) and their dispatch.

Only argparse here: the client library, rich and platformdirs load when a command runs,
so that `musicsync serve` and the other server commands never import them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

# Exit codes: 0 everything done, 1 something failed (said why), 2 usage or configuration.
OK, FAILED, USAGE = 0, 1, 2


def add_client_commands(commands) -> None:
    """Adds the desktop commands to `musicsync`'s subparsers."""
    def command(name: str, help_text: str, description: str | None = None):
        sub = commands.add_parser(name, help=help_text,
                                  description=description or help_text[0].upper() + help_text[1:])
        sub.set_defaults(client_func=_lazy(*_COMMANDS[name]))
        return sub

    login = command("login", "sign in to a musicsync server from this computer",
                    "Sign in to a musicsync server and keep the sign-in (server address and "
                    "refresh token, never the password) in this user's configuration folder, "
                    "readable by you only. Asks for the password unless --password-stdin.")
    login.add_argument("server", metavar="SERVER", help="host (each service on its usual port: auth 50051, file 50052, sync "
                            "50053) or host:port (every service on that port)")
    login.add_argument("--user", metavar="NAME", help="user name (asked for if not given)")
    login.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
    login.add_argument("--tls", action="store_true",
                       help="talk TLS, trusting the system's certificate authorities")
    login.add_argument("--tls-root", metavar="FILE",
                       help="talk TLS, trusting this PEM certificate (e.g. the server's "
                            "self-signed one, DATA_DIR/tls/cert.pem on the server)")
    login.add_argument("--tls-name", metavar="NAME",
                       help="the name the server's certificate holds, if not SERVER's host")

    command("logout", "sign out: end the sign-in on the server and forget it here",
            "End this computer's sign-in on the server (when it answers) and forget it here.")
    command("whoami", "say who is signed in to which server (exit 1 if nobody)")

    ls = command("ls", "list the songs of your library")
    ls.add_argument("--json", action="store_true", help="print a JSON array of the songs")

    push = command("push", "upload songs to your library",
                   "Upload song files; an interrupted upload continues where it stopped.")
    push.add_argument("files", nargs="+", metavar="FILE")
    push.add_argument("--path", metavar="REMOTE_PATH",
                      help="where to file it in the library (one FILE), or the folder to put "
                           "them in (several FILEs, or a path ending in /); default: the "
                           "file's name")
    push.add_argument("--quiet", "-q", action="store_true", help="print errors only")

    pull = command("pull", "download songs from your library",
                   "Download songs into DIR/<their path in the library>, creating folders. "
                   "A file already there with other content is not overwritten.")
    pull.add_argument("songs", nargs="+", metavar="HASH|PATH")
    pull.add_argument("-o", "--output", default=".", metavar="DIR",
                      help="where to put them (default: the current folder)")
    pull.add_argument("--quiet", "-q", action="store_true", help="print errors only")

    mv = command("mv", "move or rename a song in your library (no bytes sent)")
    mv.add_argument("song", metavar="HASH|PATH")
    mv.add_argument("new_path", metavar="NEWPATH")

    rm = command("rm", "remove songs from your library")
    rm.add_argument("songs", nargs="+", metavar="HASH|PATH")

    star = command("star", "star songs of your library (favourites)")
    star.add_argument("songs", nargs="+", metavar="HASH|PATH")
    unstar = command("unstar", "unstar songs of your library")
    unstar.add_argument("songs", nargs="+", metavar="HASH|PATH")
    rate = command("rate", "rate a song of your library, 1 to 5 stars (0: no rating)")
    rate.add_argument("song", metavar="HASH|PATH")
    rate.add_argument("rating", type=_rating, metavar="N", help="0 (none) to 5")

    watch = command("watch", "print the library's changes as they happen, until Ctrl-C")
    watch.add_argument("--since", type=int, metavar="CURSOR",
                       help="start after this cursor (default: changes from now on)")

    playlist = command("playlist", "list, show, import and export your playlists",
                       "Your playlists: list them, show one, import an M3U8 file (songs "
                       "matched by their path in the library) or export one as M3U8.")
    actions = playlist.add_subparsers(dest="playlist_command", metavar="ACTION", required=True)
    actions.add_parser("ls", help="list your playlists (name, songs, version)")
    show = actions.add_parser("show", help="a playlist's songs, in order")
    show.add_argument("name", metavar="NAME")
    root_help = ("the music folder whose layout matches the library's paths (default: "
                 "the folder the playlist file is in)")
    importing = actions.add_parser(
        "import", help="make a playlist of an M3U8 file's songs",
        description="Make a playlist of the songs an M3U8 file names, matched by their path "
                    "in the library relative to --root; lines naming no song of the "
                    "library are reported and left out. A playlist of that name gets the "
                    "file's songs.")
    importing.add_argument("file", metavar="FILE.m3u8")
    importing.add_argument("--name", help="the playlist's name (default: the file's name)")
    importing.add_argument("--root", metavar="DIR", help=root_help)
    exporting = actions.add_parser(
        "export", help="write a playlist as an M3U8 file",
        description="Write a playlist as M3U8 (#EXTM3U, #EXTINF), each song's path relative "
                    "to the file's folder (songs under --root at their library paths). "
                    "Without FILE, to standard output (paths from the current folder).")
    exporting.add_argument("name", metavar="NAME")
    exporting.add_argument("file", metavar="FILE", nargs="?")
    exporting.add_argument("--root", metavar="DIR", help=root_help)

    sync = command("sync", "keep a music folder and your library in step",
                   "Two-way sync of a folder tree with your library. Exit codes: 0 all "
                   "synced, 1 some files failed or the server could not be reached, 2 "
                   "not signed in, folder refused or a mass deletion stopped.")
    sync.add_argument("dir", metavar="DIR")
    sync.add_argument("--dry-run", action="store_true",
                      help="print the plan (up, down, delete, move, conflicts), change nothing")
    sync.add_argument("--direction", choices=("push", "pull", "both"), default="both",
                      help="push: only upload; pull: only download; both (default)")
    sync.add_argument("--no-delete", action="store_true", help="propagate no deletions")
    sync.add_argument("--jobs", type=_positive_int, default=4, metavar="N",
                      help="parallel transfers (default 4)")
    sync.add_argument("--watch", action="store_true",
                      help="keep running and apply changes on either side as they happen")
    sync.add_argument("--max-delete", type=_percentage, default=50.0, metavar="N%",
                      help="stop if a run would delete more than N%% of the songs on either "
                           "side (default 50%%)")
    sync.add_argument("--force", action="store_true", help="go ahead past the --max-delete stop")
    sync.add_argument("--no-playlists", action="store_true",
                      help="leave DIR/Playlists/*.m3u8 and your playlists alone")
    sync.add_argument("--quiet", "-q", action="store_true", help="print errors only")
    sync.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    sync.add_argument("--forget", action="store_true",
                      help="forget DIR's last sync (e.g. after its .musicsync marker was "
                           "lost): the next sync starts afresh, deleting nothing")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _rating(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= 5:
        raise argparse.ArgumentTypeError("must be 0 (no rating) to 5")
    return value


def _percentage(text: str) -> float:
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r} (e.g. 30%)") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("must be between 0% and 100%")
    return value


def run(args: argparse.Namespace) -> int:
    """Runs a desktop command; the exit code (see OK, FAILED, USAGE)."""
    from .errors import ClientError, NotSignedIn
    try:
        result = args.client_func(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return result
    except NotSignedIn as exc:
        print(f"musicsync: {exc.message}", file=sys.stderr)
        return USAGE
    except ClientError as exc:
        print(f"musicsync: {exc.message}", file=sys.stderr)
        return FAILED
    except UsageError as exc:
        print(f"musicsync: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return 130


class UsageError(Exception):
    """A command used wrongly or not configured (exit 2)."""


# The commands' functions, resolved lazily so that parsing imports nothing of the client.

def _lazy(module: str, name: str):
    def call(args):
        import importlib
        return getattr(importlib.import_module(f".{module}", __package__), name)(args)
    call.__name__ = name
    return call


_COMMANDS = {
    "login": ("account", "login"), "logout": ("account", "logout"),
    "whoami": ("account", "whoami"), "ls": ("library", "ls"), "push": ("library", "push"),
    "pull": ("library", "pull"), "mv": ("library", "mv"), "rm": ("library", "rm"),
    "watch": ("library", "watch"), "sync": ("commands", "sync"),
    "star": ("favourites", "star"), "unstar": ("favourites", "unstar"),
    "rate": ("favourites", "rate"),
    "playlist": ("playlist_commands", "playlist"),
}


def sync(args) -> int:
    """`musicsync sync DIR`: the folder sync lives in musicsync.client.folder."""
    try:
        from .folder.command import run as run_sync
    except ImportError as exc:
        if exc.name and exc.name.startswith(f"{__package__}.folder"):
            print("musicsync: `sync` is not available yet in this version", file=sys.stderr)
            return USAGE
        raise
    return run_sync(args)
