"""sync.SyncService."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing

from ..db import Database
from ..errors import DeadlineExceeded, InvalidArgument, ResourceExhausted
from ..interceptors import current_principal
from ..library import listing
from ..limits import CLIENT_MESSAGE_BYTES, MAX_SUBJECTS, PAGE_BUDGET_BYTES
from ..proto import sync_pb2, sync_pb2_grpc
from ..sync.changes import SONGS, Subject
from ..sync.diff import DiffPart, DiffSlots, HeldHashes, diff
from ..sync.feed import DeviceRef, Feed, page_size, parse_device
from .convert import (WIRE_SUBJECTS, change_event, encoded_size, file_entry, filename, path,
                      within_budget)
from .streams import StreamLimits

HASHES_PER_MESSAGE = 25_000
# Request messages one Diff may send (each may carry 50,000 hashes): a bound on
# a stream that sends empty messages for ever.
MAX_DIFF_MESSAGES = 10_000
DEFAULT_HEARTBEAT = 30
# Each heartbeat of each Watch reads the feed: 3,000 Watches at 1 s kept a core busy.
MIN_HEARTBEAT = 10
MAX_HEARTBEAT = 3600


class SyncServicer(sync_pb2_grpc.SyncServiceServicer):
    def __init__(self, db: Database, feed: Feed, *, idle_timeout: float = 60,
                 diff_slots: DiffSlots | None = None, streams: StreamLimits | None = None,
                 min_heartbeat: int = MIN_HEARTBEAT) -> None:
        self._db = db
        self._feed = feed
        self._idle_timeout = idle_timeout
        self._diff_slots = diff_slots or DiffSlots()
        self._streams = streams or StreamLimits()
        self._min_heartbeat = min_heartbeat

    async def GetSync(self, request, context):
        user_id = current_principal().user_id
        # A song at the top of the tree sends no path (it is its filename): a flat
        # library, what the original app makes, fits as many songs as before paths.
        files = [sync_pb2.FileInfo(hash=sha.hex(), filename=filename(name),
                                   path=path(where) if where != name else "")
                 for sha, name, where in await listing.all_names(self._db, user_id)]
        response = sync_pb2.GetSyncResponse(files=files)
        if response.ByteSize() > CLIENT_MESSAGE_BYTES:
            raise ResourceExhausted(
                f"your library of {len(files)} songs no longer fits GetSync's single "
                f"message (4 MiB); use ListFiles (paged) or Diff instead")
        return response

    async def ListFiles(self, request, context):
        entries, next_token = await listing.page(
            self._db, current_principal().user_id, request.page_token,
            page_size(request.page_size))
        files = [file_entry(e) for e in entries]
        fit = within_budget(files)  # big entries: a shorter page, the rest on the next
        if fit < len(files):
            files, next_token = files[:fit], listing.encode_page_token(entries[fit - 1].id)
        return sync_pb2.ListFilesResponse(files=files, next_page_token=next_token)

    async def Diff(self, request_iterator, context):
        user_id = current_principal().user_id
        requests = _idle_limited(request_iterator, self._idle_timeout)
        held = HeldHashes()
        try:
            async with self._diff_slots.hold(user_id):
                cursor, device = await _receive_diff(requests, held)
                async with aclosing(diff(self._db, user_id, held, cursor,
                                         device.id if device else None)) as parts:
                    async with self._diff_slots.comparing:
                        first_part = await anext(parts)
                    async for message in _diff_messages(first_part, parts):
                        yield message
        except (InvalidArgument, ResourceExhausted):
            # Refused while the device may still be sending, the status could be lost in
            # the reset of the stream (grpc then reports INTERNAL to the device): read the
            # rest, within the same bounds, and drop it.
            held.release()
            await _drain(requests)
            raise
        finally:
            held.release()
        await self._feed.diffed_from(user_id, device, cursor)

    async def Changes(self, request, context):
        user_id = current_principal().user_id
        device = parse_device(request.device.id, request.device.name)
        page = await self._feed.page(user_id, request.since, page_size(request.limit),
                                     subjects_of(request.subjects))
        await self._feed.read_from(user_id, device, request.since)  # page checked it
        events = [change_event(e) for e in page.events]
        cursor, has_more = page.cursor, page.has_more
        fit = within_budget(events)  # big entries: fewer events, the rest on the next call
        if fit < len(events):
            events, cursor, has_more = events[:fit], events[fit - 1].seq, True
        return sync_pb2.ChangesResponse(events=events, cursor=cursor, has_more=has_more)

    async def Watch(self, request, context):
        user_id = current_principal().user_id
        device = parse_device(request.device.id, request.device.name)
        subjects = subjects_of(request.subjects)
        heartbeat = request.heartbeat_seconds or DEFAULT_HEARTBEAT
        if not self._min_heartbeat <= heartbeat <= MAX_HEARTBEAT:
            raise InvalidArgument(f"heartbeat_seconds must be between {self._min_heartbeat} "
                                  f"and {MAX_HEARTBEAT} (0 means {DEFAULT_HEARTBEAT}); got "
                                  f"{heartbeat}")
        with self._streams.hold(user_id, "Watch"):
            # Checked before it is recorded as the device's cursor.
            await self._feed.check_cursor(user_id, request.since, zero_means_full=False)
            await self._feed.read_from(user_id, device, request.since)
            async for item in self._feed.watch(user_id, request.since, heartbeat, subjects):
                if isinstance(item, int):
                    yield sync_pb2.WatchResponse(
                        heartbeat=sync_pb2.Heartbeat(at=self._feed.now()), cursor=item)
                else:
                    yield sync_pb2.WatchResponse(event=change_event(item),
                                                 cursor=item.change.seq)

    async def Ack(self, request, context):
        device = parse_device(request.device.id, request.device.name)
        if device is None:
            raise InvalidArgument("Ack needs device.id: the device whose cursor to remember")
        await self._feed.acknowledge(current_principal().user_id, device, request.cursor)
        return sync_pb2.AckResponse()


def subjects_of(wire: Sequence[int]) -> frozenset[Subject]:
    """The subjects a Changes or Watch asks for: songs alone when it names none."""
    if not wire:
        return SONGS
    if len(wire) > MAX_SUBJECTS:
        raise InvalidArgument(f"subjects may name at most {MAX_SUBJECTS} subjects")
    unknown = [value for value in wire if value not in WIRE_SUBJECTS]
    if unknown:
        raise InvalidArgument(f"subjects: unknown subject {unknown[0]}; see sync.Subject")
    return frozenset(WIRE_SUBJECTS[value] for value in wire)


async def _idle_limited(requests: AsyncIterator, seconds: float) -> AsyncIterator:
    """The request stream, ended with DEADLINE_EXCEEDED when it sends nothing for
    ``seconds`` and with INVALID_ARGUMENT past MAX_DIFF_MESSAGES messages."""
    requests = aiter(requests)
    try:
        for _ in range(MAX_DIFF_MESSAGES):
            try:
                async with asyncio.timeout(seconds):
                    request = await anext(requests)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise DeadlineExceeded(
                    f"the Diff sent nothing for {seconds:g} seconds and was ended; send all "
                    "hashes, then half-close the stream") from None
            yield request
            del request
    finally:
        # grpc keeps a failed call's state for a while, and through it this generator
        # with the last message it received: end it now.
        await requests.aclose()
    raise InvalidArgument(f"a Diff may send at most {MAX_DIFF_MESSAGES} request messages; "
                          "put up to 50,000 hashes in each")


async def _receive_diff(requests: AsyncIterator, held: HeldHashes
                        ) -> tuple[int, DeviceRef | None]:
    """Reads a Diff's request messages into ``held``: the cursor and device of the first."""
    cursor, device, first = 0, None, True
    async for request in requests:
        if first:
            cursor = request.cursor
            device = parse_device(request.device.id, request.device.name)
            first = False
        elif request.cursor or request.HasField("device"):
            raise InvalidArgument("send cursor and device in the first Diff message only")
        held.add(request.hashes)
        del request  # one message at a time: it may hold 4 MiB
    return cursor, device


async def _drain(requests: AsyncIterator) -> None:
    """Reads what is left of a rejected request stream, keeping none of it."""
    try:
        async for _ in requests:
            pass
    except (InvalidArgument, DeadlineExceeded):
        pass  # past its bounds: the first error stands


async def _diff_messages(first: DiffPart, rest: AsyncIterator[DiffPart]
                         ) -> AsyncIterator[sync_pb2.DiffResponse]:
    """The Diff's answer as messages of at most HASHES_PER_MESSAGE hashes / PAGE_BUDGET_BYTES."""
    part: DiffPart | None = first
    while part is not None:
        for start in range(0, max(len(part.upload), len(part.delete)), HASHES_PER_MESSAGE):
            yield sync_pb2.DiffResponse(
                upload=part.upload[start:start + HASHES_PER_MESSAGE],
                delete=part.delete[start:start + HASHES_PER_MESSAGE], cursor=part.cursor)
        if not part.upload and not part.delete and not part.download:
            yield sync_pb2.DiffResponse(cursor=part.cursor)
        # The size is added up entry by entry: the message's ByteSize() walks every entry
        # it holds, and asked after each append it made a full Diff of 20,000 songs take
        # 8 s of the event loop instead of 20 ms.
        message, size = sync_pb2.DiffResponse(cursor=part.cursor), 0
        for entry in part.download:
            wire_entry = file_entry(entry)
            message.download.append(wire_entry)
            size += encoded_size((wire_entry,))
            if size >= PAGE_BUDGET_BYTES:
                yield message
                message, size = sync_pb2.DiffResponse(cursor=part.cursor), 0
        if message.download:
            yield message
        part = await anext(rest, None)
