"""asyncio on the engine.

Inside the engine every worker has an asyncio event loop whose ready queue runs
after the worker's batch of I/O, whose timers are the worker's and whose
cross-thread wake-ups go through the worker's queue: :func:`worker_loop`
returns the calling worker's. ``async def`` protocol callbacks and HttpServer
handlers run on it::

    import pyparallel as px

    class Echo:
        async def data_received(self, transport, data):
            await asyncio.sleep(0.01)
            return data            # sent when the coroutine returns
"""

from __future__ import annotations

from ._worker import WorkerLoop, worker_loop

__all__ = ["WorkerLoop", "worker_loop"]
