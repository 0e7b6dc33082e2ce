"""Bounds on the strings a client sends, and on the size of what the server answers.

Every string field of a request is bounded, so no request can store a row that
later makes an answer too big to send; requests over a bound fail with
INVALID_ARGUMENT naming the field and the bound (checked in ``services/``, where
the wire is decoded). Rows stored before these bounds existed are clipped when
they are put on the wire, and paged answers stop adding entries at a byte
budget, so every answer stays under the 4 MiB a client accepts by default.

    MAX_TAG_CHARS          1024   FileMetadata title, artist, album, album_artist, genre;
                                  GetCoverArtRequest.album (album_artist, album)
                                  (tags read from the audio file are clipped to it)
    MAX_FILENAME_BYTES      255   the last path component of FileMetadata.filename, and
                                  each segment of a song's path (FileMetadata.path,
                                  MoveRequest.path; paths.py has the other rules), UTF-8
    MAX_PATH_BYTES         4096   FileMetadata.filename as sent, folders included, and a
                                  song's whole path, UTF-8
    MAX_DEVICE_ID_CHARS     128   Device.id (Diff, Changes, Watch, Ack)
    MAX_DEVICE_NAME_CHARS   256   Device.name
    MAX_PAGE_TOKEN_CHARS    128   ListFilesRequest.page_token
    MAX_ID_CHARS            128   FileMetadata.upload_id
    MAX_SECRET_CHARS       1024   security_key, refresh_token
    MAX_USERNAME_INPUT_CHARS 256  a username as sent (a new one must have 3-64
                                  characters once normalized; see auth/rules.py)
    MAX_PLAYLIST_NAME_CHARS  256  a playlist's name
    MAX_PLAYLIST_DESCRIPTION_CHARS 4096  a playlist's description
    MAX_PLAYLISTS_PER_USER  1000  playlists one user keeps (RESOURCE_EXHAUSTED)
    MAX_PLAYLIST_ENTRIES   10000  entries of one playlist (RESOURCE_EXHAUSTED)
    MAX_PLAYLIST_OPERATIONS 1000  operations of one EditPlaylist
    MAX_PLAYLIST_HASHES_PER_REQUEST 1000  songs one CreatePlaylist or EditPlaylist
                                  names, all its inserts together
    MAX_SUBJECTS               8  ChangesRequest/WatchRequest.subjects
    MAX_PLAYS_PER_BATCH     1000  RecordPlaysRequest.plays (RESOURCE_EXHAUSTED)
    MAX_STATS_HASHES        1000  GetSongStatsRequest.hashes
    MAX_PLAY_ID_CHARS         64  Play.id (a play over it is refused alone, as are:)
    MAX_SECONDS_PLAYED     86400  Play.seconds_played (a day)
    PLAY_CLOCK_SKEW_MS    300000  how far Play.started_at_ms and RateSongRequest.at_ms
                                  may be ahead of the server's clock (5 minutes)
    PLAY_BEFORE_ADDED_MS  90 days how long before the song entered the library a play
                                  may have started (players/listening.py says why)
    MAX_BROWSE_PAGE          500  Page.size of browsing and search (0 means
                                  DEFAULT_BROWSE_PAGE, 100)
    MAX_BROWSE_TOKEN_CHARS 16384  Page.token of browsing and search (a token holds up
                                  to two tag values; players/pages.py)
    MAX_SEARCH_QUERY_CHARS   200  SearchRequest.query
    MAX_SEARCH_WORDS          10  words of a search query (letters and digits; the
                                  rest separates words)
    MAX_ALBUM_SONGS         1000  songs GetAlbum returns without a page (older clients)
    (passwords: at most 1024 bytes of UTF-8, auth/rules.py; hashes: 64 hex
    characters, files.parse_hash.)

    CLIENT_MESSAGE_BYTES   4 MiB  the answer size a client accepts by default
    AUTH_REQUEST_BYTES    16 KiB  a request to auth.AuthService, as received: the
                                  largest valid one (1,024-character key or token,
                                  passwords of 1,024 bytes) is about 6 KiB; bigger
                                  ones are refused unparsed with RESOURCE_EXHAUSTED
                                  (interceptors.tolerant_deserializer), and a server
                                  running only the auth service receives no more
    PAGE_BUDGET_BYTES      1 MiB  ListFiles and Changes pages end before passing it

Requests of calls without a token (Auth but ChangePassword, health checks) are read
only once ``auth_gate.AuthGate`` admits them; beyond a bound a call waits for a slot,
and gets RESOURCE_EXHAUSTED, unread, if none frees in time (grpc takes in up to
4 MiB per message before a size check can see it):

    TOKENLESS_RECEIVING         16   such requests being received at once, in all
    TOKENLESS_RECEIVING_PER_ADDRESS 4  ... from one client address
    TOKENLESS_WAIT_SECONDS       1   time such a call waits for a slot
    TOKENLESS_RECEIVE_SECONDS    5   time for such a request to arrive once admitted
                                     (DEADLINE_EXCEEDED after: a client that never
                                     sends its message holds its slot no longer)
"""

from __future__ import annotations

from .errors import InvalidArgument

MAX_TAG_CHARS = 1024
MAX_FILENAME_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_DEVICE_ID_CHARS = 128
MAX_DEVICE_NAME_CHARS = 256
MAX_PAGE_TOKEN_CHARS = 128
MAX_ID_CHARS = 128
MAX_SECRET_CHARS = 1024
MAX_USERNAME_INPUT_CHARS = 256
MAX_PLAYLIST_NAME_CHARS = 256
MAX_PLAYLIST_DESCRIPTION_CHARS = 4096
MAX_PLAYLISTS_PER_USER = 1000
MAX_PLAYLIST_ENTRIES = 10_000
MAX_PLAYLIST_OPERATIONS = 1000
MAX_PLAYLIST_HASHES_PER_REQUEST = 1000
MAX_SUBJECTS = 8
MAX_PLAYS_PER_BATCH = 1000
MAX_STATS_HASHES = 1000
MAX_PLAY_ID_CHARS = 64
MAX_SECONDS_PLAYED = 24 * 3600
PLAY_CLOCK_SKEW_MS = 5 * 60 * 1000
PLAY_BEFORE_ADDED_MS = 90 * 24 * 3600 * 1000
MAX_BROWSE_PAGE = 500
DEFAULT_BROWSE_PAGE = 100
MAX_BROWSE_TOKEN_CHARS = 16384
MAX_SEARCH_QUERY_CHARS = 200
MAX_SEARCH_WORDS = 10
MAX_ALBUM_SONGS = 1000

CLIENT_MESSAGE_BYTES = 4 * 1024 * 1024
PAGE_BUDGET_BYTES = 1024 * 1024
AUTH_REQUEST_BYTES = 16 * 1024
TOKENLESS_RECEIVING = 16
TOKENLESS_RECEIVING_PER_ADDRESS = 4
TOKENLESS_WAIT_SECONDS = 1.0
TOKENLESS_RECEIVE_SECONDS = 5.0

# Methods (by prefix) whose requests are smaller than the server's receive limit.
_REQUEST_BYTES_LIMITS = (("/auth.AuthService/", AUTH_REQUEST_BYTES),)


def request_bytes_limit(method: str) -> int | None:
    """The most bytes a request of ``method`` ("/package.Service/Method") may have, if less
    than the server receives for any message."""
    for prefix, limit in _REQUEST_BYTES_LIMITS:
        if method.startswith(prefix):
            return limit
    return None


def check_chars(value: str, field: str, limit: int) -> str:
    """``value``, or InvalidArgument if it has more than ``limit`` characters."""
    if len(value) > limit:
        raise InvalidArgument(f"{field} may be at most {limit} characters long "
                              f"(got {len(value)})")
    return value


def clip(value: str, limit: int = MAX_TAG_CHARS) -> str:
    """``value`` cut to ``limit`` characters (for stored or read text, never for input)."""
    return value if len(value) <= limit else value[:limit]


def clip_utf8(value: str, limit: int) -> str:
    """``value`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    if len(value) * 4 <= limit or len(value.encode("utf-8")) <= limit:
        return value
    return value.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
