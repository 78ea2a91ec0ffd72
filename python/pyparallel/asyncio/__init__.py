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

Standalone, like uvloop: ``pyparallel.asyncio.run(main())``, or
``asyncio.Runner(loop_factory=pyparallel.asyncio.new_event_loop)``, or the
policy :class:`EventLoopPolicy`; the loop's I/O, timers and wake-ups are a
one-worker engine's, and its coroutines run on that worker's thread.

Both carry TCP and Unix-socket servers and connections on the engine, TLS on
either (asyncio's own SSL protocol stacked on the engine's connection,
``start_tls`` too), and datagram endpoints (on the loop's descriptor watcher).
"""

from __future__ import annotations

from ._net import Server
from ._standalone import EventLoopPolicy, Loop, new_event_loop, run
from ._transport import EngineTransport
from ._worker import WorkerLoop, worker_loop

#: For asyncio.Runner(loop_factory=...) and asyncio.run(..., loop_factory=...).
loop_factory = new_event_loop

__all__ = ["WorkerLoop", "worker_loop", "Loop", "new_event_loop", "loop_factory", "run",
           "EventLoopPolicy", "EngineTransport", "Server"]
