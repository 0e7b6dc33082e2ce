"""Stars, ratings and plays for programs: ``client.listening`` (library.ListeningService).

    await client.listening.rate(song.hash, starred=True)
    results = await client.listening.record_plays([Play("phone-0001", song.hash, started_ms,
                                                        seconds_played=212, completed=True)])
    stats = await client.listening.stats([song.hash])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..proto import library_pb2, library_pb2_grpc

if TYPE_CHECKING:
    from .api import Client

# The server's bounds (limits.py): plays per RecordPlays call, hashes per GetSongStats.
PLAYS_PER_BATCH = 1000
STATS_BATCH = 1000

OUTCOMES = {
    library_pb2.PlayResult.OUTCOME_RECORDED: "recorded",
    library_pb2.PlayResult.OUTCOME_DUPLICATE: "duplicate",
    library_pb2.PlayResult.OUTCOME_INVALID: "invalid",
}


@dataclass(frozen=True)
class SongStats:
    """A song's favourite, rating (0: none, 1-5) and plays; times in Unix milliseconds."""

    hash: str
    starred: bool = False
    rating: int = 0
    play_count: int = 0
    skip_count: int = 0
    last_played_ms: int = 0
    rated_at_ms: int = 0

    @classmethod
    def from_proto(cls, message: library_pb2.SongStats) -> SongStats:
        return cls(message.hash, message.starred, message.rating, message.play_count,
                   message.skip_count, message.last_played_ms, message.rated_at_ms)


@dataclass(frozen=True)
class Play:
    """A play recorded on this device: ``id`` is this device's own, unique among its plays
    (1-64 characters; sending it again counts it once), ``started_at_ms`` by its clock."""

    id: str
    hash: str
    started_at_ms: int
    seconds_played: int = 0
    completed: bool = False
    skipped: bool = False


@dataclass(frozen=True)
class PlayResult:
    """What the server made of a play: "recorded", "duplicate" or "invalid" (``error``)."""

    id: str
    outcome: str
    error: str = ""


class Listening:
    """The ListeningService calls of one Client (``client.listening``)."""

    def __init__(self, client: Client, channel, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._stub = library_pb2_grpc.ListeningServiceStub(channel)
        self._clock = clock

    async def rate(self, hash: str, *, starred: bool | None = None, rating: int | None = None,
                   at_ms: int | None = None) -> SongStats:
        """Stars/unstars and/or rates (0-5) a song, as done at ``at_ms`` (default: now);
        the song's stats after it (unchanged if a newer star or rating was stored)."""
        request = library_pb2.RateSongRequest(
            hash=hash, at_ms=at_ms if at_ms is not None else int(self._clock() * 1000))
        if starred is not None:
            request.starred = starred
        if rating is not None:
            request.rating = rating
        answer = await self._client._unary(self._stub.RateSong, request)
        return SongStats.from_proto(answer.stats)

    async def record_plays(self, plays: Sequence[Play]) -> list[PlayResult]:
        """Sends plays in batches the server takes; a result per play, in order."""
        results: list[PlayResult] = []
        for start in range(0, len(plays), PLAYS_PER_BATCH):
            answer = await self._client._unary(
                self._stub.RecordPlays, library_pb2.RecordPlaysRequest(plays=[
                    library_pb2.Play(id=p.id, hash=p.hash, started_at_ms=p.started_at_ms,
                                     seconds_played=p.seconds_played, completed=p.completed,
                                     skipped=p.skipped)
                    for p in plays[start:start + PLAYS_PER_BATCH]]))
            results.extend(PlayResult(r.id, OUTCOMES.get(r.outcome, "unknown"), r.error)
                           for r in answer.results)
        return results

    async def stats(self, hashes: Iterable[str]) -> dict[str, SongStats]:
        """The stats of those of ``hashes`` the library holds, by hash."""
        hashes = list(hashes)
        found: dict[str, SongStats] = {}
        for start in range(0, len(hashes), STATS_BATCH):
            answer = await self._client._unary(self._stub.GetSongStats,
                                               library_pb2.GetSongStatsRequest(
                                                   hashes=hashes[start:start + STATS_BATCH]))
            found.update((s.hash, SongStats.from_proto(s)) for s in answer.stats)
        return found
