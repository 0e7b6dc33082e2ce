"""Players benchmark: browsing, search, statistics, playlists, plays and cover art on a big
library (issue 15).

Starts `musicsync serve` (its own temp folder; SQLite, or PostgreSQL with
--database-url), registers a user, and fills that user's library straight through the
database: the rows uploads, plays and playlist edits would write (blobs, library entries,
change events, search documents, song stats, plays, playlists and their entries), in
batches, through the real schema, so the fill takes a minute instead of 100,000 uploads.
By default: 100,000 songs on 10,000 albums by 2,000 artists, 1,000,000 plays, 500
playlists (--songs scales them all). Then over gRPC, p50 and p95 of:

- a page of 100 albums (ListAlbums by name, walking the pages),
- a search (words, prefixes, two words, an artist typed without its diacritics),
- GetStats right after a change (a batch of plays: computed again, not cached; this is
  RESULT's stats_ms), and again unchanged (cached); its first call reported apart; the
  baseline: the grouped scans of the library and its plays that a call made before the
  running totals (db/summaries.py), timed on the same database,
- a playlist edit (EditPlaylist inserting a song), a batch of 1,000 plays (RecordPlays),
- GetCoverArt of a song uploaded with an embedded picture: first (resized) and cached.

A service that answers UNIMPLEMENTED (being built) is reported as 0 and named.

    python bench/library.py [--songs 100000] [--repeat 30] [--database-url URL]

Its last line is machine-readable:
RESULT albums_ms=<ms> search_ms=<ms> stats_ms=<ms> playlist_edit_ms=<ms> plays_batch_ms=<ms> art_cached_ms=<ms>
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import grpc
from sqlalchemy import select, text, update

from musicsync.db import Database
from musicsync.db.models import (Blob, Change, LibraryEntry, PlayRecord, Playlist, PlaylistEntry,
                                 SearchDocument, SongStats, User)
from musicsync.db.search_index import document_of
from musicsync.db.summaries import afresh
from musicsync.proto import file_pb2, file_pb2_grpc, library_pb2, library_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import KEY, Server, free_port, register_bench_user  # noqa: E402 - sibling

BATCH = 5000
SYLLABLES = ["ka", "lo", "mi", "ra", "ve", "to", "su", "ne", "bi", "do", "ré", "jö", "an",
             "el", "or", "ys", "zu", "qui", "pé", "ma"]
GENRES = ["Rock", "Pop", "Jazz", "Electronic", "Hip-Hop", "Classical", "Folk", "Metal",
          "Soul", "Reggae", "Blues", "Country", "Ambient", "Punk", "Latin", "Funk"]
FORMATS = [("flac", "flac"), ("mp3", "mp3"), ("m4a", "aac"), ("ogg", "vorbis"), ("opus", "opus")]


def vocabulary(size: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class Library:
    """The made-up library: names of artists, albums and songs, reproducible."""

    def __init__(self, songs: int) -> None:
        self.songs = songs
        self.albums = max(1, songs // 10)
        self.artists = max(1, songs // 50)
        self.playlists = max(1, songs // 200)
        self.plays = songs * 10
        self.words = vocabulary(2000, 1)
        firsts, lasts = vocabulary(self.artists, 2), vocabulary(self.artists, 3)
        self.artist_names = [f"{first.capitalize()} {last.capitalize()}"
                             for first, last in zip(firsts, reversed(lasts))]

    def song(self, n: int, user_id: int, now: int) -> dict:
        rng = random.Random(n)
        album = n % self.albums
        artist = self.artist_names[album % self.artists]
        ext, codec = FORMATS[album % len(FORMATS)]
        title = " ".join(rng.choice(self.words) for _ in range(rng.randint(1, 3))).capitalize()
        album_name = f"{self.words[album % 2000].capitalize()} {self.words[album * 7 % 2000]}"
        track = n // self.albums + 1
        path = f"{artist}/{album_name} {album}/{track:02d} {title}.{ext}"
        sha = hashlib.sha256(b"bench library song %d" % n).digest()
        return dict(user_id=user_id, sha256=sha, filename=path.rpartition("/")[2], path=path,
                    size=3_000_000 + rng.randint(0, 30_000_000), title=title, artist=artist,
                    album=f"{album_name} {album}", album_artist="" if n % 4 else artist,
                    genre=GENRES[album % len(GENRES)], track=track, disc=1,
                    year=1960 + album % 65, duration_ms=rng.randint(120_000, 400_000),
                    bitrate=320, sample_rate=44100, channels=2, codec=codec,
                    created_at=now - 86400 * 60 + n, updated_at=now, seq=n + 1)

    def queries(self) -> list[str]:
        rng = random.Random(7)
        found = []
        for _ in range(40):
            kind = rng.randrange(4)
            word = rng.choice(self.words)
            if kind == 0:
                found.append(word)
            elif kind == 1:
                found.append(word[:3])  # a prefix
            elif kind == 2:
                found.append(f"{word} {rng.choice(self.words)[:4]}")
            else:  # an artist as typed on a phone: no diacritics, lowercase
                found.append(rng.choice(self.artist_names).lower().replace("é", "e")
                             .replace("ö", "o").split()[0])
        return found


async def fill(url: str, library: Library, username: str) -> dict[str, float]:
    """Writes the library's rows for the user; returns seconds per table."""
    db = Database(url)
    timings: dict[str, float] = {}
    now = int(time.time())
    try:
        async with db.write() as session:
            user_id = (await session.execute(
                select(User.id).where(User.username == username))).scalar_one()
        started = time.perf_counter()
        ids: list[int] = []
        for start in range(0, library.songs, BATCH):
            rows = [library.song(n, user_id, now) for n in range(start, min(start + BATCH,
                                                                              library.songs))]
            async with db.write() as session:
                await session.execute(Blob.__table__.insert(), [
                    dict(sha256=row["sha256"], size=row["size"], created_at=now, corrupt=False)
                    for row in rows])
                await session.execute(LibraryEntry.__table__.insert(), rows)
                found = dict((await session.execute(
                    select(LibraryEntry.sha256, LibraryEntry.id).where(
                        LibraryEntry.user_id == user_id,
                        LibraryEntry.sha256.in_([row["sha256"] for row in rows])))).all())
                batch_ids = [found[row["sha256"]] for row in rows]
                ids += batch_ids
                await session.execute(SearchDocument.__table__.insert(), [
                    document_of(SimpleNamespace(id=id_, **row))
                    for id_, row in zip(batch_ids, rows)])
                await session.execute(Change.__table__.insert(), [
                    dict(user_id=user_id, seq=row["seq"], kind=1, sha256=row["sha256"], at=now)
                    for row in rows])
        async with db.write() as session:
            await session.execute(update(User).where(User.id == user_id)
                                  .values(last_seq=library.songs))
        timings["songs"] = time.perf_counter() - started

        started = time.perf_counter()
        rng = random.Random(11)
        counts = [0] * library.songs
        last = [0] * library.songs
        plays = []
        for number in range(library.plays):
            song = min(int(rng.paretovariate(1.2)) - 1, library.songs - 1) if number % 2 else (
                rng.randrange(library.songs))
            started_ms = (now - 86400 * 30) * 1000 + number * 1000
            counts[song] += 1
            last[song] = max(last[song], started_ms)
            plays.append(dict(user_id=user_id, play_id=f"bench-{number}", library_id=ids[song],
                              started_at_ms=started_ms, seconds_played=180, completed=True,
                              skipped=False, received_at=now))
            if len(plays) == BATCH * 4 or number == library.plays - 1:
                async with db.write() as session:
                    await session.execute(PlayRecord.__table__.insert(), plays)
                plays = []
        stats = [dict(library_id=ids[n], user_id=user_id, play_count=counts[n],
                      last_played_ms=last[n]) for n in range(library.songs) if counts[n]]
        for start in range(0, len(stats), BATCH):
            async with db.write() as session:
                await session.execute(SongStats.__table__.insert(), stats[start:start + BATCH])
        timings["plays"] = time.perf_counter() - started

        started = time.perf_counter()
        async with db.write() as session:
            for number in range(library.playlists):
                songs = [rng.randrange(library.songs) for _ in range(40)]
                playlist_id = (await session.execute(Playlist.__table__.insert().values(
                    user_id=user_id, name=f"Playlist {number}", description="", version=1,
                    entry_count=len(songs), created_at=now, updated_at=now)
                    .returning(Playlist.__table__.c.id))).scalar_one()
                await session.execute(PlaylistEntry.__table__.insert(), [
                    dict(playlist_id=playlist_id, position=position, library_id=ids[song],
                         sha256=hashlib.sha256(b"bench library song %d" % song).digest(),
                         path="") for position, song in enumerate(songs)])
        timings["playlists"] = time.perf_counter() - started
        if url.startswith("postgresql"):
            # What autovacuum does soon after a load this big: the planner's statistics.
            async with db.engine.connect() as connection:
                await (await connection.execution_options(isolation_level="AUTOCOMMIT")
                       ).exec_driver_sql("ANALYZE")
    finally:
        await db.close()
    return timings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class Unimplemented(Exception):
    pass


async def timed(call, request, auth) -> tuple[float, object]:
    started = time.perf_counter()
    try:
        response = await call(request, metadata=auth)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise Unimplemented from None
        raise
    return (time.perf_counter() - started) * 1000, response


def song_with_art() -> bytes:
    """An MP3 (silent frames) whose ID3 tag holds a 1200x1200 JPEG cover."""
    from mutagen.id3 import APIC, ID3, TALB, TIT2, TPE1
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (1200, 1200), (200, 40, 90)).save(picture, "JPEG", quality=90)
    frame = b"\xff\xfb\x90\x64" + bytes(413)  # MPEG-1 layer III, 128 kb/s, 44.1 kHz
    tag = ID3()
    tag.add(TIT2(encoding=3, text="Cover test"))
    tag.add(TPE1(encoding=3, text="Bench"))
    tag.add(TALB(encoding=3, text="Bench cover"))
    tag.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=picture.getvalue()))
    out = io.BytesIO(frame * 200)
    tag.save(out)
    return out.getvalue()


async def measure(port: int, auth, library: Library, repeat: int) -> dict:
    figures: dict = {"missing": []}
    options = [("grpc.max_receive_message_length", 4 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        browse = library_pb2_grpc.BrowseServiceStub(channel)
        runs, token = [], ""
        await timed(browse.ListAlbums, library_pb2.ListAlbumsRequest(), auth)  # warm-up
        for _ in range(repeat):
            ms, page = await timed(browse.ListAlbums, library_pb2.ListAlbumsRequest(
                page=library_pb2.Page(size=100, token=token)), auth)
            assert page.albums, "ListAlbums returned no albums"
            runs.append(ms)
            token = page.next_page_token
        figures["albums"] = runs

        runs, hits = [], []
        for words in (library.queries() * repeat)[:max(repeat, 40)]:
            ms, found = await timed(browse.Search, library_pb2.SearchRequest(query=words), auth)
            runs.append(ms)
            hits.append(len(found.songs))
        figures["search"], figures["search_hits"] = runs, statistics.median(hits)

        first, _ = await timed(browse.GetStats, library_pb2.GetStatsRequest(), auth)
        runs = []
        for _ in range(max(3, repeat // 3)):
            ms, stats = await timed(browse.GetStats, library_pb2.GetStatsRequest(), auth)
            runs.append(ms)
        assert stats.song_count >= library.songs
        figures["stats"], figures["stats_first"] = runs, first

        playlists = library_pb2_grpc.PlaylistServiceStub(channel)
        runs = []
        try:
            listed = (await timed(playlists.ListPlaylists, library_pb2.ListPlaylistsRequest(),
                                  auth))[1]
            playlist = listed.playlists[0]
            version, song = playlist.version, hashlib.sha256(b"bench library song 1").hexdigest()
            for _ in range(repeat):
                ms, edited = await timed(playlists.EditPlaylist, library_pb2.EditPlaylistRequest(
                    id=playlist.id, base_version=version, operations=[
                        library_pb2.PlaylistOperation(insert=library_pb2.PlaylistOperation.Insert(
                            position=0, hashes=[song]))]), auth)
                version = edited.playlist.version
                runs.append(ms)
        except Unimplemented:
            figures["missing"].append("PlaylistService")
        figures["playlist_edit"] = runs

        listening = library_pb2_grpc.ListeningServiceStub(channel)
        runs, changed = [], []
        try:
            base = int(time.time() * 1000) - 3_600_000
            for batch in range(max(3, repeat // 3)):
                plays = [library_pb2.Play(
                    id=f"bench-batch-{batch}-{n}", started_at_ms=base + batch * 1000 + n,
                    hash=hashlib.sha256(b"bench library song %d" % ((batch * 1000 + n) %
                                                                    library.songs)).hexdigest(),
                    seconds_played=200, completed=True) for n in range(1000)]
                ms, _ = await timed(listening.RecordPlays,
                                    library_pb2.RecordPlaysRequest(plays=plays), auth)
                runs.append(ms)
                # The library's plays changed: statistics are computed again, not cached.
                changed.append((await timed(browse.GetStats, library_pb2.GetStatsRequest(),
                                            auth))[0])
        except Unimplemented:
            figures["missing"].append("ListeningService")
        figures["plays_batch"], figures["stats_changed"] = runs, changed

        figures["art_first"], figures["art_cached"] = await cover_art(channel, auth, repeat)
        if figures["art_first"] is None:
            figures["missing"].append("ArtService")
            figures["art_first"], figures["art_cached"] = [], []
    return figures


async def cover_art(channel, auth, repeat: int):
    files = file_pb2_grpc.FileServiceStub(channel)
    data = song_with_art()
    uploaded = await files.Upload(iter([
        file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="cover.mp3")),
        file_pb2.UploadRequest(chunk=data)]), metadata=auth)
    art = library_pb2_grpc.ArtServiceStub(channel)

    async def fetch(size: int) -> float:
        started = time.perf_counter()
        async for _ in art.GetCoverArt(library_pb2.GetCoverArtRequest(
                hash=uploaded.file.hash, size=size), metadata=auth):
            pass
        return (time.perf_counter() - started) * 1000
    try:
        first = [await fetch(100 + n) for n in range(min(repeat, 10))]
        cached = [await fetch(100) for _ in range(repeat)]
    except grpc.aio.AioRpcError as error:
        if error.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND):
            return None, None
        raise
    return first, cached


async def scan_baseline(url: str, repeat: int = 3) -> list[float]:
    """The baseline: the grouped scans a statistics call made before the running totals
    (the library by format, codec and year; the played songs by album), on this database."""
    db = Database(url)
    dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
    runs = []
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            async with db.read() as session:
                for statement in afresh(dialect).values():
                    (await session.execute(text(statement))).all()
            runs.append((time.perf_counter() - started) * 1000)
    finally:
        await db.close()
    return runs


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


async def main() -> None:
    parser = argparse.ArgumentParser(description="Players benchmark (browse, search, stats, "
                                                 "playlists, plays, cover art)")
    parser.add_argument("--songs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL database to use (empty) instead of SQLite")
    options = parser.parse_args()
    library = Library(options.songs)

    with tempfile.TemporaryDirectory(prefix="musicsync-bench-") as folder:
        port = free_port()
        env = {"SECURITY_KEY": KEY, "LOG_LEVEL": "WARNING"}
        if options.database_url:
            env["DATABASE_URL"] = options.database_url
        server = Server([sys.executable, "-m", "musicsync.cli", "serve", "--data-dir", folder,
                         "--host", "127.0.0.1", "--auth-port", str(port), "--file-port", "0",
                         "--sync-port", "0", "--user-quota", "0"], env, port)
        try:
            await server.wait_ready()
            auth = await register_bench_user(port)
            url = options.database_url or str(Path(folder) / "musicsync.db")
            fill_s = await fill(url, library, "bench")
            figures = await measure(port, auth, library, options.repeat)
            figures["scan"] = await scan_baseline(url)
            rss = server.rss_mib()
        finally:
            server.stop()

    kind = "PostgreSQL" if options.database_url else "SQLite"
    print(f"library of {library.songs} songs, {library.albums} albums, {library.artists} "
          f"artists, {library.plays} plays, {library.playlists} playlists on {kind} "
          f"(filled in {sum(fill_s.values()):.0f} s: "
          + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in fill_s.items()) + ")")
    for name, label in (("albums", "ListAlbums page of 100"), ("search", "Search"),
                        ("stats_changed", "GetStats after a change"),
                        ("stats", "GetStats (again)"), ("scan", "baseline: grouped scans"),
                        ("playlist_edit", "EditPlaylist"),
                        ("plays_batch", "RecordPlays of 1,000"),
                        ("art_first", "GetCoverArt, first"), ("art_cached", "GetCoverArt, cached")):
        runs = figures[name]
        if runs:
            print(f"{label:<26} p50 {p50(runs):8.1f} ms   p95 {percentile(runs, 0.95):8.1f} ms")
        else:
            print(f"{label:<26} not measured")
    print(f"GetStats, first call       {figures['stats_first']:8.1f} ms; search pages held "
          f"{figures['search_hits']:.0f} songs (median); server RSS {rss:.0f} MiB")
    if figures["stats_changed"] and figures["scan"]:
        print(f"GetStats after a change takes {p50(figures['stats_changed']):.1f} ms where the "
              f"grouped scans it replaced take {p50(figures['scan']):.1f} ms: "
              f"{p50(figures['scan']) / max(p50(figures['stats_changed']), 0.01):.1f}x faster")
    if figures["missing"]:
        print("UNIMPLEMENTED on this server (reported as 0): " + ", ".join(figures["missing"]))
    print(f"RESULT albums_ms={p50(figures['albums']):.1f} search_ms={p50(figures['search']):.1f} "
          f"stats_ms={p50(figures['stats_changed']):.1f} "
          f"playlist_edit_ms={p50(figures['playlist_edit']):.1f} "
          f"plays_batch_ms={p50(figures['plays_batch']):.1f} "
          f"art_cached_ms={p50(figures['art_cached']):.1f}")


if __name__ == "__main__":
    asyncio.run(main())
