"""Bookkeeping for work that runs after its caller has moved on (ends, deletes, deliveries).

Each task is named; a keyed task is not started twice while one with its key runs (a second
request for the same work is dropped); a failure is logged, never lost silently; `drain` waits
for everything (tests, an orderly stop) and `aclose` cancels what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Hashable
from typing import Any

import structlog

log = structlog.get_logger("videobridge.background")


class BackgroundTasks:
    def __init__(self, name: str) -> None:
        self.name = name  # the log's `tasks` field: whose work failed
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keys: dict[Hashable, asyncio.Task[Any]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str, key: Hashable = None) -> asyncio.Task[Any] | None:
        """Run `work` as a task; None (and `work` closed unstarted) if `key` is already running."""
        if key is not None and key in self._keys:
            work.close()
            return None
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        if key is not None:
            self._keys[key] = task
        task.add_done_callback(lambda t: self._finished(key, t))
        return task

    def _finished(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if key is not None and self._keys.get(key) is task:
            del self._keys[key]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background_task_failed", tasks=self.name, task=task.get_name(),
                      error=f"{type(exc).__name__}: {str(exc)[:200]}")

    async def drain(self) -> None:
        """Wait until no task is left, including tasks spawned by the ones awaited."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel every task and wait for them to finish."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
