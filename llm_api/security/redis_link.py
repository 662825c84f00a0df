"""One worker's link to the shared Redis: bounded calls, and the one place that decides what an outage is.

A local shortage is not an outage. Under load every pooled connection can be busy, or the event loop can
be too slow to read a reply in time; treating that as "Redis is down" switched whole workers to
in-process counters and let 3.6x the limit through (the measured defect). So:

- the pool is a `BlockingConnectionPool` sized per worker (with a fast path for a free connection:
  redis_pool.py): a call waits for a free connection instead of failing at once (`MaxConnectionsError`);
- a refused or reset connection means Redis does not answer: an outage, at once;
- a call still running at its deadline (RATE_LIMIT_REDIS_TIMEOUT_S x 2) is NOT cancelled: one ping on
  the link's own probe connection (outside the pool) asks whether Redis answers. If it does, the delay is
  local (a slow loop, a queue for connections) and the call goes on until it completes — a script that
  Redis has already run is never thrown away and retried — within a hard bound (`hard_deadline_s`),
  past which that one call is `RedisBusy` (503 for that request, the shared counters stay in force).
  Only if the ping fails too is it an outage.

The pooled connections have no socket timeout: the link bounds every call (a tight socket timeout would
time out, on a slow loop, reads of replies that had long arrived; and redis-py's timeout wraps every
write in a task of its own). A call the link cancels closes its connection (redis-py disconnects on
cancellation), so no reply is ever read by the wrong caller.

During an outage `call` raises `RedisDown` at once (no waiting on a dead server) while a background probe
pings every second; the first answer ends the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError  # type: ignore[attr-defined]  # stubs predate it
from redis.exceptions import TimeoutError as RedisTimeoutError

from llm_api.security.redis_pool import GatewayConnectionPool

log = logging.getLogger("llm_api.ratelimit")

T = TypeVar("T")

# What `limits.aio` storage URIs map to in redis-py's own URL schemes (the plain, single-server forms).
_BASIC_SCHEMES = {"async+redis": "redis", "async+rediss": "rediss", "async+redis+unix": "unix"}
BUSY_LOG_INTERVAL_S = 10.0


def hard_deadline_s(timeout_s: float) -> float:
    """The longest a call to a Redis that answers may take (and the pooled sockets' timeouts)."""
    return max(5.0, 10 * timeout_s)


class RedisDown(Exception):
    """Redis does not answer: the caller applies its outage policy (in-process limits, or 503)."""


class RedisBusy(Exception):
    """Redis answers, but this worker could not complete the call within its deadline (a local overload)."""


def basic_redis_url(storage_uri: str) -> str | None:
    """The redis-py URL of a plain (not Sentinel, not Cluster) `limits.aio` storage URI, else None."""
    scheme, _, rest = storage_uri.partition("://")
    base = _BASIC_SCHEMES.get(scheme)
    return f"{base}://{rest}" if base else None


def blocking_pool(
    url: str, *, max_connections: int, timeout_s: float, reply_timeout_s: float | None = None
) -> Any:
    """A pool whose callers wait for a free connection (redis-py's own retries off); `timeout_s` bounds
    waiting for a connection and connecting, `reply_timeout_s` each write and reply (None: the caller
    bounds them, as `RedisLink.call` does)."""
    return GatewayConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=reply_timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


def probe_client(url: str, *, timeout_s: float) -> Any:
    """A separate small client for pings, so a busy pool cannot make Redis look down."""
    pool = blocking_pool(url, max_connections=4, timeout_s=timeout_s, reply_timeout_s=timeout_s)
    return Redis(connection_pool=pool)


def _is_local_shortage(exc: BaseException) -> bool:
    if isinstance(exc, MaxConnectionsError):
        return True
    # BlockingConnectionPool's "No connection available." (its wait timed out); redis-py has no subclass.
    return isinstance(exc, RedisConnectionError) and isinstance(exc.__cause__, asyncio.TimeoutError)


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError | RedisTimeoutError | asyncio.TimeoutError)


class RedisLink:
    """Runs Redis calls within a deadline and tracks whether Redis itself is answering."""

    def __init__(
        self,
        *,
        probe: Any,
        timeout_s: float,
        fail_closed: bool = False,
        probe_interval_s: float = 1.0,
        hard_deadline: float | None = None,
    ) -> None:
        self._probe_client = probe
        self._timeout_s = timeout_s
        self._hard_deadline_s = hard_deadline if hard_deadline is not None else hard_deadline_s(timeout_s)
        self._fail_closed = fail_closed
        self._probe_interval_s = probe_interval_s
        self._degraded = False
        self._probe: asyncio.Task[None] | None = None
        self._busy_logged_at = -BUSY_LOG_INTERVAL_S
        self._confirming: asyncio.Future[bool] | None = None

    @property
    def degraded(self) -> bool:
        """True while Redis does not answer (callers use their outage policy)."""
        return self._degraded

    @property
    def deadline_s(self) -> float:
        """How long a call may run before the link asks whether Redis answers."""
        return 2 * self._timeout_s

    @property
    def hard_deadline_s(self) -> float:
        """How much longer a call may run once a ping said Redis answers (then it is RedisBusy)."""
        return self._hard_deadline_s

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation`; RedisDown during an outage, RedisBusy if Redis answers but the call cannot end."""
        if self._degraded:
            raise RedisDown()
        # The operation runs in the caller's task, watched by a timer: a task of its own (and the
        # socket timeouts' wait_for) each cost an event-loop cycle per call on the hot path.
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(self, task)
        try:
            return await operation()
        except asyncio.CancelledError:
            if watch.verdict is not None and task.uncancel() <= watch.cancelling:
                raise watch.verdict() from None
            raise
        except Exception as exc:
            if _is_local_shortage(exc) or _is_timeout(exc):
                if await self._confirm():
                    self._note_busy(exc)
                    raise RedisBusy() from exc
                self._enter_outage(exc)
                raise RedisDown() from exc
            if isinstance(exc, RedisConnectionError | OSError):  # refused, reset, unresolvable
                self._enter_outage(exc)
                raise RedisDown() from exc
            raise
        finally:
            watch.stop()

    def _confirmation(self) -> asyncio.Future[bool]:
        """One ping shared by every call that is waiting meanwhile."""
        if self._confirming is None or self._confirming.done():
            self._confirming = asyncio.ensure_future(self.ping(deadline_s=2 * self.deadline_s))
        return self._confirming

    async def _confirm(self) -> bool:
        return await asyncio.shield(self._confirmation())

    async def ping(self, *, deadline_s: float | None = None) -> bool:
        """Does Redis answer a PING on the probe connection within the deadline?"""
        try:
            async with asyncio.timeout(deadline_s or self.deadline_s):
                return bool(await self._probe_client.ping())
        except Exception:  # any failure to answer is "no"
            return False

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        with contextlib.suppress(Exception):
            await self._probe_client.aclose()

    def _note_busy(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._busy_logged_at < BUSY_LOG_INTERVAL_S:
            return
        self._busy_logged_at = now
        log.warning(
            "rate-limit check did not finish in time but Redis answers: this worker is overloaded",
            extra={"exception_type": type(exc).__name__},
        )

    def _enter_outage(self, exc: BaseException) -> None:
        if self._degraded:
            return
        self._degraded = True
        log.warning(
            "rate-limit storage unavailable: %s until Redis answers again",
            "refusing requests (503)" if self._fail_closed else "limiting in process",
            extra={"exception_type": type(exc).__name__, "fail_closed": self._fail_closed},
        )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_until_recovered(), name="ratelimit-redis-probe")

    async def _probe_until_recovered(self) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(self._probe_interval_s)
            if await self.ping():
                self._degraded = False
                log.info(
                    "rate-limit storage recovered: shared limits apply again",
                    extra={"outage_s": round(time.monotonic() - started, 3)},
                )
                return


class _Watch:
    """The deadline of one `RedisLink.call`, on timers rather than a task: at `deadline_s` it asks (one
    shared ping) whether Redis answers. No: the call is cancelled as an outage (RedisDown). Yes: the delay
    is local and the call goes on, up to `hard_deadline_s` more, then it is cancelled as RedisBusy."""

    def __init__(self, link: RedisLink, task: asyncio.Task[Any]) -> None:
        self._link = link
        self._task = task
        self.cancelling = task.cancelling()
        self.verdict: type[RedisDown | RedisBusy] | None = None
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(link.deadline_s, self._slow)

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _slow(self) -> None:
        self._timer = None
        if not self._stopped:
            self._link._confirmation().add_done_callback(self._confirmed)

    def _confirmed(self, ping: asyncio.Future[bool]) -> None:
        if self._stopped:
            return
        if ping.cancelled() or ping.exception() is not None or not ping.result():
            self._link._enter_outage(TimeoutError())
            self._cancel(RedisDown)
        else:
            self._timer = self._loop.call_later(self._link.hard_deadline_s, self._too_long)

    def _too_long(self) -> None:
        self._timer = None
        if not self._stopped:
            self._link._note_busy(TimeoutError())
            self._cancel(RedisBusy)

    def _cancel(self, verdict: type[RedisDown | RedisBusy]) -> None:
        self.verdict = verdict
        self._task.cancel()
