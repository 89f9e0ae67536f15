"""A Service's load spreading on loopback: each new TCP connection goes to the next backend, round robin.

kube-proxy spreads connections, not requests, over a Service's ready pods; this does the
same for the replicas of one declared Deployment. Standalone (no project imports), so it
runs as its own process and is stopped like every other stand-in.

Usage: python balancer.py LISTEN_PORT BACKEND_PORT [BACKEND_PORT ...]   (all on 127.0.0.1)
"""

from __future__ import annotations

import asyncio
import itertools
import sys

HOST = "127.0.0.1"


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main(listen: int, backends: list[int]) -> None:
    turn = itertools.cycle(backends)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(HOST, next(turn))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))

    server = await asyncio.start_server(handle, HOST, listen, backlog=512)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), [int(p) for p in sys.argv[2:]]))
