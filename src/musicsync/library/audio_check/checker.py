"""The audio check of an upload, in a worker process bounded in time and memory.

mutagen is pure Python and trusts the file: a crafted tag can make it run for
minutes (ID3 of tiny frames: quadratic) or take hundreds of MiB (FLAC of empty
metadata blocks, WAV of empty chunks). So the check runs in a separate
process, and:

- caps.py refuses, before mutagen parses anything, a file that declares more
  tags or structure than any song needs;
- the worker's address space is limited (RLIMIT_AS, MEMORY_BYTES): past it the
  check fails with MemoryError and the file is refused;
- a check that takes longer than CHECK_SECONDS is stopped by killing its worker
  (and RLIMIT_CPU kills a worker whose server is gone);
- a check whose call ends (the client cancelled, the server stops) kills its
  worker at once: nothing keeps running for a caller who has left;
- at most WORKERS checks run at once; more wait their turn (cancellable).

Workers are fresh interpreters (``python -P -m musicsync.library.audio_check.worker``,
spawned, never forked from the server: a fork of a process with grpc's threads
is unsafe), importing mutagen and audio.py only (about 17 MiB). They start on
demand, serve checks one after another (a check costs a few ms, not the tens
of ms of a new interpreter), and exit after IDLE_SECONDS without one, or after
a check that left them bigger than worker.RETIRE_RSS: an idle server keeps no
worker. The worker reads the file through the server (worker.RemoteFile), so
every blob store works and the worker needs no access to it.

The worker also passes on the song's embedded cover picture (audio.py finds it):
one of at most 8 MiB whose header says it is a JPEG, PNG, GIF, WebP or BMP of at
most 8192 pixels a side (pictures.py), sent as one frame before its answer. The
server holds it while the check's caller stores it, at most 8 MiB per check at
once; it never parses it. Any other picture is left out with a log line: a
picture never fails an upload.

What a client is told:

- INVALID_ARGUMENT "the file's tags are too large or complex to check (...)":
  over a bound of caps.py, or over MEMORY_BYTES;
- RESOURCE_EXHAUSTED "the file could not be checked within 10 seconds ...":
  over CHECK_SECONDS (which depends on the server's load too), or the worker
  died otherwise;
- UNAVAILABLE: no worker could be started (the system is out of processes or
  memory).
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from ...errors import InvalidArgument, ResourceExhausted, Unavailable
from ...limits import MAX_TAG_CHARS
from ...storage import StagedBlob
from ..audio import AudioInfo, CoverPicture, audio_info
from ..entries import TAG_FIELDS
from .pictures import MAX_PICTURE_BYTES, MAX_PICTURE_SIDE, PICTURE_TYPES
from .worker import MAX_READ, Channel

log = logging.getLogger(__name__)

CHECK_SECONDS = 10.0  # an honest song takes milliseconds, on a Raspberry Pi too
MEMORY_BYTES = 256 * 1024 * 1024  # a worker's address space; 16 MiB of tags take ~120 MiB
WORKERS = 2  # checks at once (each worker is about 17 MiB while it lives)
IDLE_SECONDS = 60.0  # a worker without a check this long exits
_MAX_ANSWER = 1 << 20
_MAX_FRAME = max(_MAX_ANSWER, MAX_PICTURE_BYTES)  # a picture (P) frame is the largest
_READ = struct.Struct(">QI")
_TOO_COMPLEX = ("the file's tags are too large or complex to check ({}); remove some tags or "
                "embedded pictures and send it again")


def _cover_picture(answer: dict, data: bytes | None) -> CoverPicture | None:
    """The picture the worker sent, as its answer describes it; None (logged) if it left
    it out (not an image, too large: never the upload's failure)."""
    if answer.get("picture_skipped"):
        log.info("an upload's embedded cover picture was ignored: %s",
                 str(answer["picture_skipped"])[:300])
    described = answer.get("picture")
    if data is None or not isinstance(described, dict):
        return None
    mime, width, height = (described.get(key) for key in ("mime_type", "width", "height"))
    if mime not in PICTURE_TYPES or not all(
            isinstance(side, int) and 0 < side <= MAX_PICTURE_SIDE for side in (width, height)):
        log.warning("the audio check described a picture as %r: ignored", described)
        return None
    return CoverPicture(data, mime, width, height)


class WorkerStopped(Exception):
    """The worker process ended (or spoke nonsense) before answering."""


class CannotStart(Exception):
    """No worker process could be started (out of processes or memory)."""


class _Worker:
    """One worker process; its methods run in the checker's threads, except kill()."""

    def __init__(self, memory_bytes: int) -> None:
        self._memory = memory_bytes
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._channel: Channel | None = None
        self.killed = False

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None and not self.killed

    def _start(self) -> None:
        with self._lock:
            if self.killed:
                raise WorkerStopped("stopped before it started")
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-P", "-m", "musicsync.library.audio_check.worker",
                     str(self._memory)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
                    start_new_session=True)  # a terminal's Ctrl-C is the server's to handle
            except OSError as exc:
                raise CannotStart(str(exc)) from None
        self._channel = Channel(self._process.stdout, self._process.stdin)
        kind, _ = self._receive(0)
        if kind != b"K":
            raise WorkerStopped("no ready signal")

    def _receive(self, max_payload: int) -> tuple[bytes, bytes]:
        try:
            return self._channel.receive(max_payload)
        except (EOFError, OSError, ValueError) as exc:  # ValueError: a pipe closed by kill()
            raise WorkerStopped(str(exc)) from None

    def _send(self, kind: bytes, payload: bytes = b"") -> None:
        try:
            self._channel.send(kind, payload)
        except (OSError, ValueError) as exc:
            raise WorkerStopped(str(exc)) from None

    def check(self, staged: StagedBlob, request: dict) -> tuple[dict, bytes | None]:
        """Runs one check to its answer (and the picture the worker sent before it, if
        any), serving the worker's reads of ``staged``."""
        if self._process is None:
            self._start()
        failure: BaseException | None = None
        picture: bytes | None = None
        with staged.open_reader() as reader:
            self._send(b"C", json.dumps(request).encode())
            while True:
                kind, payload = self._receive(_MAX_FRAME)
                if kind == b"A":
                    if len(payload) > _MAX_ANSWER:
                        raise WorkerStopped(f"an answer of {len(payload)} bytes")
                    break
                if kind == b"P" and picture is None:
                    picture = payload
                    continue
                if kind != b"R" or len(payload) != _READ.size:
                    raise WorkerStopped(f"an unexpected frame {kind!r}")
                offset, length = _READ.unpack(payload)
                try:
                    reader.seek(offset)
                    data = reader.read(min(length, MAX_READ))
                except Exception as exc:  # noqa: BLE001 - the store's error, raised below
                    failure = exc
                    self._send(b"F")
                    continue
                self._send(b"D", data)
        if failure is not None:
            raise failure
        try:
            return json.loads(payload), picture
        except ValueError:
            raise WorkerStopped("an answer that is not JSON") from None

    def kill(self) -> None:
        """Stops the worker now (from any thread; its check's thread then ends)."""
        with self._lock:
            self.killed = True
            if self._process is not None and self._process.poll() is None:
                self._process.kill()

    def finish(self) -> int | None:
        """Ends the worker (closing its stdin asks it to exit) and reaps it; its exit code."""
        process = self._process
        if process is None:
            return None
        if process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return code


class AudioChecker:
    """Checks uploads with mutagen in worker processes, bounded in time and memory."""

    def __init__(self, *, seconds: float = CHECK_SECONDS, memory_bytes: int = MEMORY_BYTES,
                 workers: int = WORKERS, idle_seconds: float = IDLE_SECONDS) -> None:
        self.seconds = seconds
        self.memory_bytes = memory_bytes
        self.idle_seconds = idle_seconds
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[tuple[_Worker, asyncio.TimerHandle]] = []
        # The threads that talk to workers and reap them: one per worker, and one to spare.
        self._threads = ThreadPoolExecutor(max_workers=workers + 1,
                                           thread_name_prefix="audio-check")
        self._reaping: set[asyncio.Future] = set()

    async def check(self, staged: StagedBlob) -> AudioInfo | None:
        """The audio of ``staged`` (None: not a song we accept); InvalidArgument,
        ResourceExhausted or Unavailable when it cannot be checked (see the module)."""
        async with self._slots:
            worker = self._take()
            request = {"size": staged.size, "seconds": self.seconds, "max_chars": MAX_TAG_CHARS}
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(self._threads, worker.check, staged, request)
            try:
                done, _ = await asyncio.wait([work], timeout=self.seconds)
            except asyncio.CancelledError:
                await self._stop(worker, work)
                raise
            if not done:
                await self._stop(worker, work)
                log.warning("an audio check took longer than %g s and was stopped", self.seconds)
                raise ResourceExhausted(
                    f"the file could not be checked within {self.seconds:g} seconds (its tags "
                    "may be too complex); nothing was stored")
            try:
                answer, picture = work.result()
            except WorkerStopped as exc:
                code = await self._stop(worker, work)
                log.warning("an audio check worker stopped (exit code %s): %s", code, exc)
                raise ResourceExhausted(
                    f"the file could not be checked: the check stopped, over its limit of "
                    f"{self.seconds:g} seconds or {self.memory_bytes >> 20} MiB; nothing was "
                    "stored") from None
            except CannotStart as exc:
                await self._stop(worker, work)
                log.error("could not start an audio check worker: %s", exc)
                raise Unavailable("the server cannot check audio files right now; try again "
                                  "later") from None
            except BaseException:  # the store's failure to read the file
                self._keep(worker)
                raise
            if answer.get("retire"):
                self._reap(worker)
            else:
                self._keep(worker)
        return self._verdict(answer, picture)

    def _verdict(self, answer: dict, picture: bytes | None) -> AudioInfo | None:
        verdict = answer.get("verdict")
        if verdict == "audio":
            fields = answer["fields"]
            if set(fields) != set(TAG_FIELDS):
                raise RuntimeError(f"the audio check answered the fields {sorted(fields)}")
            return audio_info(fields, str(answer["extension"]),
                              _cover_picture(answer, picture))
        if verdict == "not_audio":
            return None
        if verdict == "too_complex":
            raise InvalidArgument(_TOO_COMPLEX.format(answer["reason"]))
        if verdict == "out_of_memory":
            raise InvalidArgument(_TOO_COMPLEX.format(
                f"they need more than {self.memory_bytes >> 20} MiB of memory"))
        raise RuntimeError(f"the audio check failed: {answer}")  # "error": a bug, logged

    def _take(self) -> _Worker:
        while self._idle:
            worker, timer = self._idle.pop()
            timer.cancel()
            if worker.alive():
                return worker
            self._reap(worker)
        return _Worker(self.memory_bytes)

    def _keep(self, worker: _Worker) -> None:
        if not worker.alive():
            self._reap(worker)
            return
        timer = asyncio.get_running_loop().call_later(self.idle_seconds, self._retire_idle, worker)
        self._idle.append((worker, timer))

    def _retire_idle(self, worker: _Worker) -> None:
        self._idle = [(w, t) for w, t in self._idle if w is not worker]
        self._reap(worker)

    def _reap(self, worker: _Worker) -> None:
        reaping = asyncio.get_running_loop().run_in_executor(self._threads, worker.finish)
        self._reaping.add(reaping)
        reaping.add_done_callback(self._reaping.discard)

    async def _stop(self, worker: _Worker, work: asyncio.Future) -> int | None:
        """Kills the worker and waits until its thread is done with the file and it is reaped."""
        worker.kill()
        await asyncio.gather(work, return_exceptions=True)
        return await asyncio.get_running_loop().run_in_executor(self._threads, worker.finish)

    async def close(self) -> None:
        """Ends the idle workers (running checks end with their calls) and the threads."""
        idle, self._idle = self._idle, []
        for worker, timer in idle:
            timer.cancel()
            self._reap(worker)
        if self._reaping:
            await asyncio.gather(*self._reaping, return_exceptions=True)
        await asyncio.to_thread(self._threads.shutdown)
