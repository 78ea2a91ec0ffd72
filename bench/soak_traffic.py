"""The clients of the soak test (bench/soak.py), all on one asyncio loop.

Normal clients check every answer byte for byte and count what went wrong;
attackers count what the server did to them. Every network wait has a
timeout, so a server that stalls shows up as errors, never as a hung driver.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

READ_TIMEOUT = 30.0  # a normal answer later than this is an error
BIG_SIZE = 256 * 1024
_PATTERN = bytes(i * 7 % 251 for i in range(251))
#: The body of /big (bench/soak_server.py serves the same bytes).
BIG = (_PATTERN * (BIG_SIZE // len(_PATTERN) + 1))[:BIG_SIZE]


@dataclass
class Tally:
    """What happened, by name; the first few error messages of normal clients."""

    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def normal_error(self, who: str, what: str) -> None:
        self.counts["normal_errors"] += 1
        if len(self.errors) < 20:
            self.errors.append(f"{time.strftime('%H:%M:%S')} {who}: {what}")


@dataclass
class Plan:
    """How much of each kind of traffic; bench/soak.py fills it from its options."""

    host: str
    port: int
    fd_limit: int
    keepalive_clients: int = 4
    keepalive_rate: float = 100.0  # requests/s per client
    pipelined_clients: int = 2
    pipeline_depth: int = 16
    pipeline_rate: float = 8.0  # batches/s per client
    slowloris: int = 40
    chunk_ext_floods: int = 2
    chunk_ext_rate: float = 2e6  # bytes/s per connection
    pipeline_floods: int = 2
    pipeline_flood_depth: int = 200
    pipeline_flood_hold: float = 20.0
    resets_per_s: float = 10.0
    exhaust_period: float = 60.0  # a descriptor-exhaustion phase starts this often
    exhaust_hold: float = 15.0  # and lasts this long


# ---- HTTP, just enough --------------------------------------------------------

def request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: soak\r\n"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length (the soak server always sends one)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def pick(rng: random.Random) -> tuple[bytes, bytes]:
    """A request and the body its answer must have."""
    r = rng.random()
    if r < 0.25:
        return request("GET", "/plaintext"), b"Hello, World!"
    if r < 0.50:
        return request("GET", "/json"), b'{"message":"Hello, World!"}'
    if r < 0.75:
        n = rng.randrange(1_000_000)
        return request("GET", f"/item/{n}"), json.dumps(
            {"item": n, "square": n * n}, separators=(",", ":")).encode()
    if r < 0.98:
        body = rng.randbytes(rng.randrange(1, 4096))
        return request("POST", "/echo", body), body
    return request("GET", "/big"), BIG


def same_json(got: bytes, want: bytes) -> bool:
    try:
        return bool(json.loads(got) == json.loads(want))
    except ValueError:
        return False


def check(status: int, got: bytes, want: bytes) -> str | None:
    if status != 200:
        return f"status {status}"
    if got == want or (want.startswith(b"{") and same_json(got, want)):
        return None
    return f"wrong body ({len(got)} bytes, {got[:60]!r})"


async def open_conn(plan: Plan, timeout: float = 10.0
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(plan.host, plan.port,
                                                          limit=1 << 20), timeout)


def abort(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (SO_LINGER 0): no FIN, the server sees ECONNRESET."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


# ---- normal clients -----------------------------------------------------------

async def normal_client(plan: Plan, tally: Tally, stop: asyncio.Event, who: str,
                        converse: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                           Awaitable[None]]) -> None:
    """converse() on a connection until stop; whatever breaks it is an error
    (then a new connection)."""
    writer = None
    while not stop.is_set():
        try:
            reader, writer = await open_conn(plan)
            tally.add("normal_connects")
            await converse(reader, writer)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if not stop.is_set():
                tally.normal_error(who, repr(exc))
                await asyncio.sleep(0.5)
        finally:
            close(writer)
            writer = None


async def answer(reader: asyncio.StreamReader, tally: Tally, who: str, want: bytes
                 ) -> dict[str, str]:
    """Read one answer and check it against want; its headers."""
    status, headers, body = await asyncio.wait_for(read_response(reader), READ_TIMEOUT)
    problem = check(status, body, want)
    if problem:
        tally.normal_error(who, problem)
    else:
        tally.add("normal_ok")
    return headers


async def keepalive_client(plan: Plan, tally: Tally, stop: asyncio.Event, i: int) -> None:
    """One request at a time on a keep-alive connection, paced."""
    rng = random.Random(i)
    who = f"keep-alive {i}"

    async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not stop.is_set():
            req, want = pick(rng)
            writer.write(req)
            if (await answer(reader, tally, who, want)).get("connection") == "close":
                return  # the server may end a keep-alive connection; that is no error
            await asyncio.sleep(rng.expovariate(plan.keepalive_rate))

    await normal_client(plan, tally, stop, who, converse)


async def pipelined_client(plan: Plan, tally: Tally, stop: asyncio.Event, i: int) -> None:
    """Batches of pipelined requests in one write; answers in order."""
    rng = random.Random(1000 + i)
    who = f"pipelined {i}"

    async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not stop.is_set():
            batch = [pick(rng) for _ in range(plan.pipeline_depth)]
            writer.write(b"".join(req for req, _ in batch))
            for _, want in batch:
                await answer(reader, tally, who, want)
            await asyncio.sleep(rng.expovariate(plan.pipeline_rate))

    await normal_client(plan, tally, stop, who, converse)


# ---- attackers ----------------------------------------------------------------

async def until_closed(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True when the server closes (or resets) within seconds; data discarded."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


async def slowloris(plan: Plan, tally: Tally, stop: asyncio.Event, i: int) -> None:
    """A request head that never ends: one header line every 2 s."""
    await asyncio.sleep(i * 0.05)
    while not stop.is_set():
        writer = None
        try:
            reader, writer = await open_conn(plan)
            writer.write(b"GET /plaintext HTTP/1.1\r\nHost: soak\r\n")
            started = time.monotonic()
            while not stop.is_set():
                if await until_closed(reader, 2.0):
                    tally.add("slowloris_cut")
                    tally.add("slowloris_seconds", int(time.monotonic() - started))
                    break
                writer.write(b"X-Slow: %d\r\n" % random.randrange(1 << 30))
        except (TimeoutError, OSError):
            await asyncio.sleep(1.0)
        finally:
            close(writer)


async def chunk_ext_flood(plan: Plan, tally: Tally, stop: asyncio.Event, i: int) -> None:
    """A chunked body of 1-byte chunks, each with a 4 KB extension."""
    piece = b"1;" + b"e" * 4000 + b"\r\nx\r\n"
    while not stop.is_set():
        writer = None
        reading: asyncio.Future[bytes] | None = None
        try:
            reader, writer = await open_conn(plan)
            writer.write(b"POST /echo HTTP/1.1\r\nHost: soak\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            reading = asyncio.ensure_future(reader.read(65536))  # the server's answer, or end
            while not stop.is_set() and not reading.done():
                writer.write(piece * 16)
                tally.add("chunk_ext_bytes", len(piece) * 16)
                await asyncio.wait_for(writer.drain(), 30)
                await asyncio.sleep(len(piece) * 16 / plan.chunk_ext_rate)
            tally.add("chunk_ext_closed")
        except (TimeoutError, OSError):
            tally.add("chunk_ext_closed")
            await asyncio.sleep(0.5)
        finally:
            if reading is not None and reading.done() and not reading.cancelled():
                reading.exception()  # a reset is expected: retrieved, not reported
            elif reading is not None:
                reading.cancel()
            close(writer)


async def pipeline_flood(plan: Plan, tally: Tally, stop: asyncio.Event, i: int) -> None:
    """Many pipelined requests for a big answer from a client that never reads."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, (plan.host, plan.port)), 10)
            await asyncio.wait_for(loop.sock_sendall(
                sock, request("GET", "/big") * plan.pipeline_flood_depth), 10)
            tally.add("pipeline_floods")
            await asyncio.sleep(plan.pipeline_flood_hold)
        except (TimeoutError, OSError):
            await asyncio.sleep(1.0)
        finally:
            sock.close()


async def resets(plan: Plan, tally: Tally, stop: asyncio.Event) -> None:
    """Ask for a big answer, read a little of it, reset the connection."""
    while not stop.is_set():
        writer = None
        try:
            reader, writer = await open_conn(plan, timeout=5)
            writer.write(request("GET", "/big"))
            await asyncio.wait_for(reader.readexactly(1024), 10)
            abort(writer)
            writer = None
            tally.add("resets")
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            tally.add("reset_failures")
        finally:
            close(writer)
        await asyncio.sleep(1.0 / plan.resets_per_s)


async def exhaust(plan: Plan, tally: Tally, stop: asyncio.Event) -> None:
    """Every exhaust_period: open connections past the server's descriptor limit
    (the kernel completes handshakes into the listen backlog even when the
    server can no longer accept), hold them for exhaust_hold, close them all."""
    target = plan.fd_limit + 300
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), plan.exhaust_period - plan.exhaust_hold)
            return
        except TimeoutError:
            pass
        held: list[socket.socket] = []
        phase_end = time.monotonic() + plan.exhaust_hold
        tally.add("exhaust_phases")
        try:
            while len(held) < target and time.monotonic() < phase_end and not stop.is_set():
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(
                        sock, (plan.host, plan.port)), 1.0)
                    held.append(sock)
                except (TimeoutError, OSError):
                    sock.close()
                    tally.add("exhaust_connect_failures")
                    await asyncio.sleep(0.05)
                if len(held) % 50 == 0:
                    await asyncio.sleep(0)
            tally.counts["exhaust_held_max"] = max(tally.counts["exhaust_held_max"], len(held))
            while time.monotonic() < phase_end and not stop.is_set():
                await asyncio.sleep(0.25)
        finally:
            for sock in held:
                sock.close()


async def run_traffic(plan: Plan, tally: Tally, stop: asyncio.Event, attack: asyncio.Event
                      ) -> None:
    """Normal clients at once; the attackers once `attack` is set; all until `stop`."""
    normal = [keepalive_client(plan, tally, stop, i) for i in range(plan.keepalive_clients)]
    normal += [pipelined_client(plan, tally, stop, i) for i in range(plan.pipelined_clients)]
    tasks = [asyncio.ensure_future(c) for c in normal]
    await attack.wait()
    attackers = [slowloris(plan, tally, stop, i) for i in range(plan.slowloris)]
    attackers += [chunk_ext_flood(plan, tally, stop, i) for i in range(plan.chunk_ext_floods)]
    attackers += [pipeline_flood(plan, tally, stop, i) for i in range(plan.pipeline_floods)]
    attackers += [resets(plan, tally, stop), exhaust(plan, tally, stop)]
    tasks += [asyncio.ensure_future(c) for c in attackers]
    await stop.wait()
    await asyncio.sleep(0.5)  # let the clients notice
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
