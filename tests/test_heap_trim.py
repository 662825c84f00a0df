"""A worker trims its C heap once it goes quiet after work: never under load, not again while idle."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from llm_api.config import Settings
from llm_api.utils.heap_trim import QuietHeapTrim, glibc_malloc_trim
from tests.support import async_wait_until


class FakeCpu:
    """A process CPU clock the test moves: each read returns the time so far, then adds `per_read`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.per_read = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        value = self.now
        self.now += self.per_read
        return value


@pytest.fixture
def cpu() -> Iterator[FakeCpu]:
    yield FakeCpu()


def _trimmer(cpu: FakeCpu, calls: list[int]) -> QuietHeapTrim:
    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    return QuietHeapTrim(trim, check_interval_s=0.005, quiet_cpu_s=0.01, work_cpu_s=1.0, cpu_time=cpu)


async def _reads_pass(cpu: FakeCpu, count: int) -> None:
    """Wait until the task has read the clock `count` more times (that many check intervals went by)."""
    target = cpu.reads + count
    await async_wait_until(lambda: cpu.reads >= target, timeout=5, interval=0.002)


async def test_trims_once_when_quiet_after_work_and_not_again_while_idle(cpu: FakeCpu) -> None:
    calls: list[int] = []
    trimmer = _trimmer(cpu, calls)
    trimmer.start()
    try:
        await _reads_pass(cpu, 5)
        assert calls == []  # quiet from the start, but no work done yet: nothing to hand back
        cpu.now += 2.0  # a burst of work within one interval (not quiet)
        await async_wait_until(lambda: trimmer.trims == 1, timeout=5, interval=0.002)
        await _reads_pass(cpu, 10)
        assert calls == [0] and trimmer.trims == 1  # still idle: no second trim
        cpu.now += 2.0
        await async_wait_until(lambda: trimmer.trims == 2, timeout=5, interval=0.002)
    finally:
        await trimmer.aclose()


async def test_never_trims_under_load(cpu: FakeCpu) -> None:
    calls: list[int] = []
    trimmer = _trimmer(cpu, calls)
    cpu.per_read = 0.5  # every interval uses far more CPU than the quiet bound
    trimmer.start()
    try:
        await _reads_pass(cpu, 20)
        assert calls == []
    finally:
        await trimmer.aclose()


async def test_a_failing_trim_stops_the_task_and_is_logged(
    cpu: FakeCpu, caplog: pytest.LogCaptureFixture
) -> None:
    def refusing(pad: int) -> int:
        raise OSError("no malloc_trim here")

    trimmer = QuietHeapTrim(refusing, check_interval_s=0.005, work_cpu_s=1.0, cpu_time=cpu)
    trimmer.start()
    try:
        await _reads_pass(cpu, 2)
        cpu.now += 2.0
        await async_wait_until(lambda: "heap trim failed" in caplog.text, timeout=5, interval=0.002)
        assert trimmer._task is not None
        await asyncio.wait_for(trimmer._task, timeout=5)  # ended, not crashing the worker
        assert trimmer.trims == 0
    finally:
        await trimmer.aclose()


def test_glibc_malloc_trim_is_found_and_runs() -> None:
    trim = glibc_malloc_trim()
    assert trim is not None  # this machine's C library is glibc
    assert trim(0) in (0, 1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("enabled", "expected"), [(True, QuietHeapTrim), (False, type(None))])
def test_the_lifespan_runs_it_unless_turned_off(
    enabled: bool, expected: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED", "true")  # llm_api.main builds `app` from the env on import
    from llm_api.main import create_app

    settings = Settings(
        allow_unauthenticated=True,
        otel_sdk_disabled=True,
        heap_trim_when_quiet=enabled,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
    )
    with TestClient(create_app(settings)) as client:
        assert isinstance(client.app.state.heap_trim, expected)  # type: ignore[attr-defined]
