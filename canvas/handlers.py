"""Django's ASGI handler, with a request's sync work in one thread it does not start.

Django's ``ASGIHandler`` serves a request of sync middleware and views like this (Django 5.2,
asgiref 3.13, measured here):

- it starts a thread for every request (``ThreadSensitiveContext()`` makes a single-thread
  executor) and, at the end, another one that joins it;
- in ASGI mode the middleware chain ends in the async ``_get_response_async``, so a chain of
  sync middleware crosses from its thread back to the event loop to resolve the URL, then
  into the thread again for the view, and back; the ``request_started`` signal and
  ``response.close()`` (``request_finished``) each cross once more.

A trivial token-authenticated GET took ~3 ms of the server's CPU, over half of it in
``asyncio``, ``asgiref`` and ``threading``. This handler runs the same request the way
Django's ``WSGIHandler`` does, in one thread: the ``request_started`` signal, the request,
the middleware chain loaded in sync mode, the view and ``response.close()``
(``request_finished``) in one call; a streaming response is closed after it was sent, in a
second call on the same thread. The thread is one of a small set of single-thread executors
kept for reuse (asgiref's ``ThreadSensitiveContext(executor=...)``), so each request still
runs its sync code, and its database connection, on one thread of its own at a time, and
concurrent requests still run side by side.

Everything else is Django's own: reading the body, building the request, sending the
response (streaming ones included), and its 400/413 answers. What is dropped is only the
async path's disconnect watch, which cancels an async view when the client goes away: every
view here is sync, and a sync view runs to its end under Django's handler too.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import set_script_prefix

# Single-thread executors kept between requests: as many as requests were served at once,
# up to this many (past it, a request's executor is shut down after it, as Django does).
IDLE_THREADS_KEPT = 16


class CanvasASGIHandler(ASGIHandler):
    def __init__(self):
        # ASGIHandler.__init__ loads the middleware in async mode; this handler runs it
        # in sync mode, as WSGIHandler does.
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self._idle: list[ThreadPoolExecutor] = []
        self._idle_lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._take_executor()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self._give_back(executor)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(get_script_prefix(scope))
            response = await sync_to_async(self._respond)(scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await sync_to_async(response.close)()
        finally:
            body_file.close()

    def _respond(self, scope, body_file):
        """The request's sync part, as WSGIHandler.__call__ runs it. A response whose
        content is in memory is closed here (``request_finished``: the request's database
        connection goes back); a streaming one after it was sent, on this thread too."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            response.close()
        return response

    def _take_executor(self) -> ThreadPoolExecutor:
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="http")

    def _give_back(self, executor: ThreadPoolExecutor) -> None:
        with self._idle_lock:
            if len(self._idle) < IDLE_THREADS_KEPT:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)
