"""1,000 concurrent clients, each sending 1 MiB of random bytes in random-sized
writes while reading concurrently, get back exactly what they sent from the
echo example (two workers)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time

import pytest

from helpers import example

CLIENTS = 1000
SIZE = 1 << 20
MAX_WRITE = 64 << 10
# 1 GiB each way through one asyncio loop: a few seconds on two CPUs.
TIME_LIMIT = 60.0

# Each client sends its own 1 MiB window of a random pool (a fresh pool per run).
POOL = os.urandom(16 << 20)


async def echo_client(port: int, rnd: random.Random) -> tuple[int, bytes, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    offset = rnd.randrange(len(POOL) - SIZE)
    data = memoryview(POOL)[offset:offset + SIZE]
    sent = hashlib.sha256()

    async def write_all() -> None:
        pos = 0
        while pos < SIZE:
            n = min(rnd.randint(1, MAX_WRITE), SIZE - pos)
            sent.update(data[pos:pos + n])
            writer.write(data[pos:pos + n])
            pos += n
            await writer.drain()

    async def read_all() -> tuple[int, bytes]:
        got, digest = 0, hashlib.sha256()
        while got < SIZE:
            chunk = await reader.read(256 << 10)
            if not chunk:
                break
            got += len(chunk)
            digest.update(chunk)
        return got, digest.digest()

    writing = asyncio.create_task(write_all())
    got, digest = await read_all()
    await writing
    writer.close()
    await writer.wait_closed()
    return got, digest, sent.digest()


async def run_clients(port: int, seed: int) -> list[tuple[int, bytes, bytes]]:
    master = random.Random(seed)
    clients = [echo_client(port, random.Random(master.getrandbits(64))) for _ in range(CLIENTS)]
    return await asyncio.wait_for(asyncio.gather(*clients), TIME_LIMIT)


@pytest.mark.timeout(TIME_LIMIT + 60)
def test_thousand_clients_one_mib_each(spawn, backend: str, record_property) -> None:
    srv = spawn(*example("echo", "--workers", "2"), backend=backend)
    seed = random.randrange(1 << 32)
    start = time.monotonic()
    results = asyncio.run(run_clients(srv.port, seed))
    elapsed = time.monotonic() - start
    record_property("seconds", round(elapsed, 2))
    print(f"\n{CLIENTS} clients x 1 MiB echoed on {backend} in {elapsed:.2f} s")
    short = [i for i, (got, _, _) in enumerate(results) if got != SIZE]
    wrong = [i for i, (got, digest, want) in enumerate(results) if got == SIZE and digest != want]
    assert not short, f"seed {seed}: {len(short)} clients got less than 1 MiB back: {short[:5]}"
    assert not wrong, f"seed {seed}: {len(wrong)} clients got other bytes back: {wrong[:5]}"
    stats = srv.finish().assert_clean()
    assert stats["backend"] == {"uring": "io_uring", "epoll": "epoll"}[backend]
    assert stats["bytes_in"] == stats["bytes_out"] == CLIENTS * SIZE
    assert stats["accepts"] == stats["closes"] == CLIENTS
