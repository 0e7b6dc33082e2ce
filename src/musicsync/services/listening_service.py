"""library.ListeningService (library.proto): stars, ratings and plays (players/listening.py)."""

from __future__ import annotations

from ..errors import InvalidArgument, ResourceExhausted
from ..interceptors import current_principal
from ..library.files import parse_hash
from ..limits import MAX_PLAY_ID_CHARS, MAX_PLAYS_PER_BATCH, MAX_STATS_HASHES
from ..players.context import PlayerContext
from ..players.listening import Listening, Play, Rating, Stats
from ..proto import library_pb2, library_pb2_grpc


class ListeningServicer(library_pb2_grpc.ListeningServiceServicer):
    def __init__(self, context: PlayerContext) -> None:
        self._listening = Listening(context)

    async def RateSong(self, request, context):
        rating = Rating(
            starred=request.starred if request.HasField("starred") else None,
            rating=request.rating if request.HasField("rating") else None,
            at_ms=request.at_ms)
        stats = await self._listening.rate(current_principal().user_id,
                                           parse_hash(request.hash), rating)
        return library_pb2.RateSongResponse(stats=song_stats(stats))

    async def RecordPlays(self, request, context):
        if len(request.plays) > MAX_PLAYS_PER_BATCH:
            raise ResourceExhausted(
                f"send at most {MAX_PLAYS_PER_BATCH} plays per RecordPlays call (got "
                f"{len(request.plays)}); split the batch")
        plays = [Play(p.id, p.hash, p.started_at_ms, p.seconds_played, p.completed, p.skipped)
                 for p in request.plays]
        outcomes = await self._listening.record_plays(current_principal().user_id, plays)
        return library_pb2.RecordPlaysResponse(results=[
            library_pb2.PlayResult(id=o.id[:MAX_PLAY_ID_CHARS], outcome=int(o.outcome),
                                   error=o.error)
            for o in outcomes])

    async def GetSongStats(self, request, context):
        if len(request.hashes) > MAX_STATS_HASHES:
            raise InvalidArgument(f"ask for at most {MAX_STATS_HASHES} hashes per "
                                  f"GetSongStats call (got {len(request.hashes)})")
        hashes = [parse_hash(text) for text in request.hashes]
        stats = await self._listening.stats(current_principal().user_id, hashes)
        return library_pb2.GetSongStatsResponse(stats=[song_stats(s) for s in stats])


def song_stats(stats: Stats) -> library_pb2.SongStats:
    return library_pb2.SongStats(
        hash=stats.sha256.hex(), starred=stats.starred, rating=stats.rating,
        play_count=stats.play_count, skip_count=stats.skip_count,
        last_played_ms=stats.last_played_ms, rated_at_ms=stats.rated_at_ms)
