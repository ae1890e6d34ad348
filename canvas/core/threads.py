"""Bounded thread pools created on first use, sized by a setting (read then, so tests that
change the setting before the first use get their size)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings


class LazyPool:
    def __init__(self, setting: str, *, thread_name_prefix: str):
        self.setting = setting
        self.thread_name_prefix = thread_name_prefix
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __call__(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=getattr(settings, self.setting),
                    thread_name_prefix=self.thread_name_prefix,
                )
            return self._pool
