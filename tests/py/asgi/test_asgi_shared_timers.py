"""The shared timers of a loop's ASGI requests: the wait for clients to go
(pyparallel.asgi._disconnects: the waiters of one loop share one timer, each
returns once its condition holds, a cancelled waiter is dropped, and no timer
is left when none waits) and the response deadlines (._deadlines)."""

from __future__ import annotations

import asyncio
import threading
import time

from pyparallel.asgi import _disconnects

WAITERS = 1000


def test_waiters_share_one_timer() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gone = [False] * WAITERS
        tasks = [asyncio.ensure_future(_disconnects.until(lambda i=i: gone[i]))
                 for i in range(WAITERS)]
        await asyncio.sleep(0)  # every waiter is waiting now
        assert len(loop._scheduled) == 1  # type: ignore[attr-defined]  # one timer for all
        for i in range(0, WAITERS, 2):
            gone[i] = True
        await asyncio.sleep(_disconnects.POLL * 2.5)
        assert all(t.done() for t in tasks[::2])
        assert not any(t.done() for t in tasks[1::2])
        tasks[1].cancel()
        for i in range(3, WAITERS, 2):
            gone[i] = True
        await asyncio.sleep(_disconnects.POLL * 2.5)
        assert all(t.done() for t in tasks) and tasks[1].cancelled()
        assert not loop._scheduled  # type: ignore[attr-defined]  # none left behind
        assert not loop._px_disconnects.waiting  # type: ignore[attr-defined]

    asyncio.run(main())


def test_a_condition_already_true_does_not_wait() -> None:
    async def main() -> None:
        await _disconnects.until(lambda: True)
        assert not hasattr(asyncio.get_running_loop(), "_px_disconnects")

    asyncio.run(main())


def test_deadlines_share_one_sweep_and_drop_the_answered() -> None:
    # pyparallel.asgi._deadlines: added from another thread, one timer for
    # all, an entry dropped before its deadline never fires
    from pyparallel.asgi import _deadlines

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fired: list[int] = []
        soon = time.monotonic() + 0.05

        def add_all() -> None:
            for i in range(WAITERS):
                _deadlines.add(loop, i, soon, lambda i=i: fired.append(i))

        adder = threading.Thread(target=add_all)
        adder.start()
        adder.join()
        for i in range(0, WAITERS, 2):
            _deadlines.drop(loop, i)
        await asyncio.sleep(0.01)
        assert len(loop._scheduled) == 1  # type: ignore[attr-defined]  # one sweep for all
        await asyncio.sleep(_deadlines.SWEEP * 2.5)
        assert sorted(fired) == list(range(1, WAITERS, 2))
        assert not loop._scheduled  # type: ignore[attr-defined]  # the sweep stopped

    asyncio.run(main())
