"""Group commit: the short write transactions of concurrent tasks share one commit.

Every upload writes the library twice (a blob's record before the store's
commit, its entry after), and each write through the async session cost a
dozen hand-offs to aiosqlite's thread and back, one writer at a time: 8
concurrent uploads of 100 KB songs spent most of the server's CPU there and
queued behind each other (bench/small_uploads.py). Here a task hands over a
plain function of a sync Session; one task takes the write turn for every
function waiting, runs them all in a worker thread inside one BEGIN IMMEDIATE
... COMMIT, and only then answers each caller. Each function runs in a
savepoint of its own, so one that raises is rolled back alone and its caller
gets the exception; a failed commit fails every caller of the group.

Durability is unchanged: a caller hears back only after the commit that holds
its writes. Batches form by themselves (those arriving while a group runs make
the next one), with no timer and no waiting for company.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass
class _Job:
    work: Callable[[Session], Any]
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit:
    """Runs ``work(session)`` functions of many tasks in shared write transactions.

    ``engine``: a sync engine whose transactions begin IMMEDIATE. ``turn``: the
    database's write turn (this process's writers, then every process's), held
    around each group.
    """

    def __init__(self, engine: Engine,
                 turn: Callable[[], AbstractAsyncContextManager[None]]) -> None:
        self._engine = engine
        self._turn = turn
        self._waiting: list[_Job] = []
        self._committer: asyncio.Task | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="musicsync-db-write")

    async def run(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` committed, in a transaction it may share; returns its result.

        ``work`` runs in a worker thread: it must not block for long, and what it
        returns must be loaded. A caller cancelled once its work started still waits
        for the commit (the writes may land), then is cancelled.
        """
        job = _Job(work)
        self._waiting.append(job)
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_groups())
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            if job in self._waiting:  # not started: nothing of it will be written
                self._waiting.remove(job)
            else:
                await asyncio.gather(job.future, return_exceptions=True)
            raise

    async def _commit_groups(self) -> None:
        try:
            while self._waiting:
                async with self._turn():
                    jobs, self._waiting = self._waiting, []  # all that came meanwhile
                    if not jobs:
                        continue
                    try:
                        outcomes = await asyncio.get_running_loop().run_in_executor(
                            self._thread, self._run_group, [job.work for job in jobs])
                    except BaseException as exc:  # noqa: BLE001 - each caller gets it
                        outcomes = [(False, exc)] * len(jobs)
                for job, (ok, value) in zip(jobs, outcomes):
                    if job.future.done():
                        continue
                    if ok:
                        job.future.set_result(value)
                    else:
                        job.future.set_exception(value)
        finally:
            self._committer = None
            for job in self._waiting:  # only when this task itself was cancelled
                if not job.future.done():
                    job.future.set_exception(asyncio.CancelledError())
            self._waiting = []

    def _run_group(self, works: list[Callable[[Session], Any]]) -> list[tuple[bool, Any]]:
        """In the worker thread: every function in a savepoint, then one commit."""
        outcomes: list[tuple[bool, Any]] = []
        with self._engine.connect() as connection:
            with connection.begin():
                for work in works:
                    with Session(connection, join_transaction_mode="create_savepoint",
                                 expire_on_commit=False) as session:
                        try:
                            result = work(session)
                            session.commit()  # releases the savepoint
                        except Exception as exc:  # noqa: BLE001 - its caller's to handle
                            session.rollback()
                            outcomes.append((False, exc))
                            continue
                    outcomes.append((True, result))
        # Committed (leaving `with connection.begin()` without an error): failures of
        # the commit itself reach every caller through _commit_groups.
        return outcomes

    async def close(self) -> None:
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        await asyncio.to_thread(self._thread.shutdown)
