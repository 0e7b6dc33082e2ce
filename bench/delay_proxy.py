"""A loopback TCP proxy that delays every byte by a fixed time each way (a long link).

Bytes are forwarded in order, each piece ``delay`` seconds after it arrived, with no
bandwidth limit of its own: what a sender gets through depends only on how much it
may have in flight (HTTP/2 flow-control windows, TCP buffers) per round trip.

    python bench/delay_proxy.py TARGET_PORT [--listen-port 0] [--delay-ms 40]

or, in a bench: ``async with DelayProxy(target_port, 0.040) as proxy: ... proxy.port``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

READ_BYTES = 256 * 1024
# Pieces held per direction at most (a bound on the proxy's memory, about 1 GiB).
MAX_PIECES = 4096


class DelayProxy:
    """Listens on 127.0.0.1 and relays each connection to ``target_port``, late by ``delay``."""

    def __init__(self, target_port: int, delay: float, listen_port: int = 0) -> None:
        self.target_port = target_port
        self.delay = delay
        self.listen_port = listen_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> DelayProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.listen_port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):  # its relay then ends by itself
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        self._writers.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            self._writers.discard(client_writer)
            return
        self._writers.add(upstream_writer)
        try:
            await asyncio.gather(self._pump(client_reader, upstream_writer),
                                 self._pump(upstream_reader, client_writer))
        finally:
            for writer in (client_writer, upstream_writer):
                writer.close()
                self._writers.discard(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copies ``reader`` to ``writer``, each piece ``delay`` after it was read."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(MAX_PIECES)

        async def send() -> None:
            while True:
                due, data = await pieces.get()
                if not data:
                    with contextlib.suppress(OSError, RuntimeError):
                        writer.write_eof()
                    return
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if writer.is_closing():
                    return
                writer.write(data)
                await writer.drain()
        sender = asyncio.ensure_future(send())
        try:
            while True:
                try:
                    data = await reader.read(READ_BYTES)
                except OSError:
                    data = b""
                await pieces.put((loop.time() + self.delay, data))
                if not data:
                    break
            await sender
        except (OSError, ConnectionError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                await sender


async def main() -> None:
    parser = argparse.ArgumentParser(description="Delaying loopback TCP proxy")
    parser.add_argument("target_port", type=int)
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=40.0, help="delay each way")
    options = parser.parse_args()
    async with DelayProxy(options.target_port, options.delay_ms / 1000,
                          options.listen_port) as proxy:
        print(f"127.0.0.1:{proxy.port} -> 127.0.0.1:{options.target_port}, "
              f"{options.delay_ms:g} ms each way", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
