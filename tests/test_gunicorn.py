"""gunicorn.conf.py and the worker class, against the real gunicorn: uvloop + httptools, JSON logs,
and a graceful SIGTERM that lets a stream in flight finish while new connections are refused."""

from __future__ import annotations

import json
import runpy
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_api.store.migrate import HEAD_REVISION
from llm_api.worker import graceful_period_s
from tests.support import (
    ROOT,
    Emulator,
    Gateway,
    free_port,
    gateway_env,
    run_gateway,
    spawn_gunicorn,
    stop_process,
    wait_until,
)


def load_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in ("BIND", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_config_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    config = load_config(monkeypatch)
    assert config["bind"] == "0.0.0.0:8000"
    assert config["workers"] == 2 * len(os.sched_getaffinity(0)) + 1
    assert config["worker_class"] == "llm_api.worker.GatewayWorker"
    assert (config["timeout"], config["graceful_timeout"], config["keepalive"]) == (120, 30, 5)
    assert config["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert config["accesslog"] is None and config["errorlog"] == "-"
    assert config["preload_app"] is True
    assert callable(config["pre_fork"])  # freezes the master's objects before each fork


# Run in a process of its own: pre_fork freezes the caller's objects, which pytest's must not be.
FREED_BEFORE_FORK = textwrap.dedent(
    """
    import runpy, sys

    def rss_kib():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

    config = runpy.run_path(sys.argv[1])
    blocks = [bytearray(4096) for _ in range(25_000)]  # ~100 MiB of glibc's heap (pymalloc keeps <= 512 B)
    above = bytearray(4096)  # the heap's top stays in use, so free() alone cannot give the pages back
    del blocks
    before = rss_kib()
    config["pre_fork"](None, None)
    print(before - rss_kib())
    """
)


def test_pre_fork_returns_the_masters_free_heap_pages() -> None:
    """What the master has freed is not mapped into each worker it forks (glibc's malloc_trim)."""
    result = subprocess.run(
        [sys.executable, "-c", FREED_BEFORE_FORK, str(ROOT / "gunicorn.conf.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    released_kib = int(result.stdout.strip())
    assert released_kib > 50 * 1024, f"only {released_kib} KiB of ~100 MiB freed went back to the kernel"


def test_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(
        monkeypatch,
        BIND="127.0.0.1:9999",
        WEB_CONCURRENCY="3",
        FORWARDED_ALLOW_IPS="10.0.0.5",
        LOG_LEVEL="WARNING",
    )
    assert config["bind"] == "127.0.0.1:9999"
    assert config["workers"] == 3
    assert config["forwarded_allow_ips"] == "10.0.0.5"
    assert config["loglevel"] == "warning"


def test_uvicorn_gets_a_graceful_period_inside_gunicorns() -> None:
    assert graceful_period_s(30) == 25
    assert graceful_period_s(4) == 2
    assert graceful_period_s(1) == 1


@pytest.fixture(scope="module")
def doomed_gateway(emulator: Emulator) -> Iterator[Gateway]:
    """A gateway of its own: the last test sends it SIGTERM."""
    with run_gateway(gateway_env(emulator, WEB_CONCURRENCY="2", LOG_LEVEL="INFO")) as gw:
        yield gw


def serving_records(gateway: Gateway) -> list[dict[str, Any]]:
    return [r for r in gateway.log_records() if r.get("message") == "worker serving"]


def test_workers_run_uvloop_and_httptools_with_the_gc_tuned(doomed_gateway: Gateway) -> None:
    records = wait_until(
        lambda: len(serving_records(doomed_gateway)) == 2 and serving_records(doomed_gateway)
    )
    for record in records:
        assert record["event_loop"] == "uvloop.Loop"
        assert record["http_protocol"] == "httptools"
        assert record["graceful_shutdown_s"] == 25
        assert record["gc_threshold"][0] == 5_000  # the GC's young generation, tuned (llm_api.worker)
        assert record["pid"] != doomed_gateway.proc.pid
    # And the extension modules are really mapped in the live workers (the master's children). Polled: a
    # child caught between fork and import still has only the master's mappings (seen once in CI).

    def workers_with_extensions() -> list[int] | None:
        workers = children_of(doomed_gateway.proc.pid)
        loaded = [pid for pid in workers if {"/uvloop/loop.", "/httptools/parser/"} <= mapped(pid)]
        return loaded if len(workers) == 2 and loaded == workers else None

    assert len(wait_until(workers_with_extensions, timeout=20)) == 2


def mapped(pid: int) -> set[str]:
    """Which of uvloop's and httptools' extension modules the process has mapped."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    return {marker for marker in ("/uvloop/loop.", "/httptools/parser/") if marker in maps}


def children_of(parent: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return pids


def test_every_log_line_is_json_and_health_probes_are_quiet(doomed_gateway: Gateway) -> None:
    import httpx

    for _ in range(3):
        assert httpx.get(f"{doomed_gateway.base_url}/healthz").status_code == 200
    with doomed_gateway.client() as client:
        client.post("/v1/chat", json={"messages": [{"role": "user", "content": "hi"}]})
    wait_until(lambda: any(r.get("path") == "/v1/chat" for r in doomed_gateway.log_records()))
    lines = [line for line in doomed_gateway.output().splitlines() if line.strip()]
    not_json = [line for line in lines if not line.startswith("{")]
    assert not not_json, not_json[:5]
    records = [json.loads(line) for line in lines]
    assert {"gunicorn.error", "uvicorn.error", "llm_api.access"} <= {r["logger"] for r in records}
    assert not [r for r in records if r["logger"] == "uvicorn.access"]
    assert not [r for r in records if "healthz" in json.dumps(r)]


def test_the_master_imports_the_app_before_forking(doomed_gateway: Gateway) -> None:
    # preload_app: the master has the app's extension modules mapped (SQLAlchemy's, which only the store
    # imports; gunicorn and the worker class do not), i.e. it imported the app, and the workers inherit
    # those pages instead of importing it again.
    assert "/sqlalchemy/" in Path(f"/proc/{doomed_gateway.proc.pid}/maps").read_text()
    # Nothing in the master holds a thread, a socket to a provider or a database file: only the listener.
    assert len(list(Path(f"/proc/{doomed_gateway.proc.pid}/task").iterdir())) == 1
    fds = {str(fd.readlink()) for fd in Path(f"/proc/{doomed_gateway.proc.pid}/fd").iterdir()}
    assert not [fd for fd in fds if fd.endswith(".db")], fds
    assert sum(fd.startswith("socket:") for fd in fds) == 1, fds


def test_the_master_migrates_a_new_database_before_forking(emulator: Emulator, tmp_path: Path) -> None:
    """A fresh database is brought to head once, by a child the master forks before the workers; the
    workers find it there and never run Alembic (whose modules the migrating worker used to keep: ~13 MiB
    of its own memory), and the master never imports it (every worker would inherit its pages)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    with run_gateway(gateway_env(emulator, DATABASE_URL=url, WEB_CONCURRENCY="2", LOG_LEVEL="INFO")) as gw:
        wait_until(lambda: len(serving_records(gw)) == 2)
        records = gw.log_records()
        master_pid = gw.proc.pid
        master_maps = Path(f"/proc/{master_pid}/maps").read_text()
        workers = {r["pid"] for r in serving_records(gw)}
        with gw.client() as client:
            assert client.post("/v1/chat", json={"messages": [{"role": "user", "content": "hi"}]}).is_success
    migrated = [r for r in records if r.get("message") == "database migrated"]
    assert [r["to_revision"] for r in migrated] == [HEAD_REVISION], migrated
    assert migrated[0]["pid"] not in workers | {master_pid}
    assert "/markupsafe/" not in master_maps  # Mako's extension module, which Alembic loads
    assert not [r for r in records if r.get("logger", "").startswith("alembic")]


def test_a_database_down_at_start_up_is_left_to_the_workers_with_a_warning(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The master's migration is best effort: with nothing listening at the database's address its child
    logs one JSON warning (no URL, no password) and the workers start and try for themselves, as before
    (they still need the database to start: README, "The database")."""
    port = free_port()
    url = f"postgresql+asyncpg://postgres:not-a-secret-pw@127.0.0.1:{port}/none"
    env = {**gateway_env(emulator, DATABASE_URL=url, WEB_CONCURRENCY="1"), "BIND": f"127.0.0.1:{free_port()}"}
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = spawn_gunicorn(env, out)
        try:

            def warned_and_a_worker_booted() -> list[dict[str, Any]] | None:
                records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
                warned = [r for r in records if "not migrated before the workers" in r.get("message", "")]
                booted = [r for r in records if str(r.get("message", "")).startswith("Booting worker")]
                return warned if warned and booted else None

            warned = wait_until(warned_and_a_worker_booted, timeout=30)
        finally:
            stop_process(proc)
    assert len(warned) == 1 and warned[0]["level"] == "WARNING", warned
    assert warned[0]["exception_type"]
    assert "not-a-secret-pw" not in log.read_text()


def test_sighup_forks_new_workers_that_still_log(doomed_gateway: Gateway) -> None:
    """With preload a SIGHUP re-forks the workers from the master's code, and gunicorn re-applies its
    logconfig in the master (dropping the app's root handler): the new workers must still serve and still
    write the JSON access line."""
    before = set(
        wait_until(
            lambda: len(children_of(doomed_gateway.proc.pid)) == 2 and children_of(doomed_gateway.proc.pid)
        )
    )
    doomed_gateway.proc.send_signal(signal.SIGHUP)

    def new_workers_serving() -> set[int] | None:
        pids = set(children_of(doomed_gateway.proc.pid))
        serving = {r["pid"] for r in serving_records(doomed_gateway)} & pids
        return pids if len(pids) == 2 and not pids & before and serving == pids else None

    after = wait_until(new_workers_serving, timeout=60)
    with doomed_gateway.client() as client:
        for _ in range(6):  # reaches both new workers with high probability; one is enough below
            assert client.get("/v1/models").status_code == 200

    def access_lines_from_new_workers() -> list[dict[str, Any]]:
        return [
            r
            for r in doomed_gateway.log_records()
            if r.get("logger") == "llm_api.access" and r.get("pid") in after and r.get("path") == "/v1/models"
        ]

    assert wait_until(access_lines_from_new_workers)


def test_sigterm_lets_a_stream_finish_and_refuses_new_connections(
    doomed_gateway: Gateway, emu: Emulator
) -> None:
    chunks = 8
    emu.configure(text=" ".join(f"w{i}" for i in range(chunks)), chunks=chunks, chunk_delay_s=0.25)
    host, port = doomed_gateway.base_url.removeprefix("http://").split(":")
    events: list[str] = []
    first_delta = threading.Event()
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            with (
                doomed_gateway.client() as client,
                client.stream(
                    "POST",
                    "/v1/chat",
                    json={"stream": True, "messages": [{"role": "user", "content": "count"}]},
                ) as response,
            ):
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        events.append(line)
                        first_delta.set()
        except BaseException as exc:
            failure.append(exc)
            first_delta.set()

    reader = threading.Thread(target=consume)
    reader.start()
    assert first_delta.wait(timeout=15) and not failure
    doomed_gateway.proc.send_signal(signal.SIGTERM)

    def refused() -> bool:
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
        except ConnectionRefusedError:
            return True
        return False

    wait_until(refused, timeout=5)
    assert len(events) < chunks, "the stream should still be in flight when connections are refused"
    reader.join(timeout=20)
    assert not failure, failure
    assert len(events) == chunks + 1 and events[-1] == "data: [DONE]"
    assert "".join(json.loads(e.removeprefix("data: "))["delta"] for e in events[:-1]).split() == [
        f"w{i}" for i in range(chunks)
    ]
    assert doomed_gateway.proc.wait(timeout=15) == 0
    output = doomed_gateway.output()
    assert (
        "Application shutdown complete" in output
    )  # the lifespan shutdown ran (spans flushed, clients closed)
    assert "Cancel" not in output  # nothing was cut by the graceful-period timeout
