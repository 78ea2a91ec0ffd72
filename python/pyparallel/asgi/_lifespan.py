"""ASGI lifespan: startup and shutdown once per process, on a loop of their own.

The ``state`` dict the app fills at startup is the one every request's scope
gets a shallow copy of, on every worker. With ``mode="auto"`` an app that
raises on the lifespan scope before completing its startup does not support
lifespan (logged, and served without it); with ``"on"`` that is a failure;
``"off"`` never calls it. A ``lifespan.startup.failed`` (what Starlette and
FastAPI send when their startup raises) is a failure in every mode: the
server does not start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from ._cycle import ASGIApp, Message

__all__ = ["Lifespan", "LifespanError"]

_log = logging.getLogger("pyparallel.asgi")


class LifespanError(RuntimeError):
    """The app's lifespan startup (or shutdown) failed; the message says why."""


class Lifespan:
    def __init__(self, app: ASGIApp, mode: str = "auto", timeout: float = 60.0) -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"lifespan mode {mode!r}: auto, on or off")
        self.app = app
        self.mode = mode
        self.timeout = timeout
        self.state: dict[str, Any] = {}
        self.supported = mode != "off"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._shutdown_asked: asyncio.Event | None = None
        self._started = threading.Event()  # startup answered, or the app is over
        self._stopped = threading.Event()  # shutdown answered, or the app is over
        self._startup_error: str | None = None
        self._shutdown_error: str | None = None
        self._phase = "startup"

    # ---- the main thread -------------------------------------------------------

    def startup(self) -> None:
        """Run the app's startup; LifespanError when it fails."""
        if self.mode == "off":
            return
        self._thread = threading.Thread(target=self._run, name="pyparallel-asgi-lifespan",
                                        daemon=True)
        self._thread.start()
        if not self._started.wait(self.timeout):
            raise LifespanError(f"the app's lifespan startup did not complete in "
                                f"{self.timeout:g} s")
        if self._startup_error is not None:
            raise LifespanError(self._startup_error)

    def shutdown(self) -> None:
        """Run the app's shutdown (errors logged); once."""
        loop, asked = self._loop, self._shutdown_asked
        if loop is None or asked is None or self._thread is None:
            return
        if self.supported and not self._stopped.is_set():
            loop.call_soon_threadsafe(asked.set)
            if not self._stopped.wait(self.timeout):
                _log.error("the app's lifespan shutdown did not complete in %g s", self.timeout)
            elif self._shutdown_error is not None:
                _log.error("the app's lifespan shutdown failed: %s", self._shutdown_error)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(self.timeout)
        self._loop = None

    # ---- the lifespan's own thread ---------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._shutdown_asked = asyncio.Event()
        task = loop.create_task(self._main())
        loop.run_forever()
        if not task.done():
            task.cancel()
            loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        loop.close()

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as e:
            if self._phase == "startup" and not self._started.is_set():
                if self.mode == "auto":
                    self.supported = False
                    _log.info("the app does not support ASGI lifespan (%s: %s): serving "
                              "without it", type(e).__name__, e)
                else:
                    self._startup_error = f"the app's lifespan startup raised {e!r}"
                    _log.exception("ASGI lifespan startup")
            elif self._phase == "shutdown" and not self._stopped.is_set():
                self._shutdown_error = f"the app's lifespan shutdown raised {e!r}"
            else:
                _log.exception("Exception in the app's ASGI lifespan")
        finally:
            if not self._started.is_set() and self._startup_error is None and self.supported:
                self._startup_error = "the app returned from lifespan before its startup completed"
            self._started.set()
            self._stopped.set()

    async def _receive(self) -> Message:
        if self._phase == "startup":
            return {"type": "lifespan.startup"}
        assert self._shutdown_asked is not None
        await self._shutdown_asked.wait()
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._phase = "shutdown"
            self._started.set()
        elif kind == "lifespan.startup.failed":
            self._startup_error = ("the app's lifespan startup failed: "
                                   + (message.get("message") or "(no message)"))
            self._phase = "shutdown"
            self._started.set()
        elif kind == "lifespan.shutdown.complete":
            self._stopped.set()
        elif kind == "lifespan.shutdown.failed":
            self._shutdown_error = message.get("message") or "(no message)"
            self._stopped.set()
        else:
            raise RuntimeError(f"ASGI lifespan: unexpected message {kind!r}")
