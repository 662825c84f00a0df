"""Child processes that never outlive the harness, and the small /proc readers the report needs."""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
_RUNNING: list[Proc] = []


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    _log_file: object = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, tail: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        if self in _RUNNING:
            _RUNNING.remove(self)


def start(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    """Start `argv` in its own process group, output to `log`; stopped at exit if still running."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("wb")
    popen = subprocess.Popen(
        list(argv),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd or ROOT,
        start_new_session=True,
    )
    proc = Proc(name, popen, log, out)
    _RUNNING.append(proc)
    return proc


def stop_all() -> None:
    for proc in list(reversed(_RUNNING)):
        proc.stop(timeout=5)


def _on_signal(signum: int, _frame: object) -> None:
    stop_all()
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    atexit.register(stop_all)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, *, method: str = "GET", timeout: float = 1.0) -> bool:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request(method, parts.path or "/", body=b"{}" if method == "POST" else None)
        return conn.getresponse().status < 500
    except OSError:
        return False
    finally:
        conn.close()


def wait_for(
    check: Callable[[], bool], *, what: str, proc: Proc | None = None, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{what} exited early:\n{proc.output()}")
        if check():
            return
        time.sleep(0.05)
    detail = proc.output() if proc is not None else ""
    raise TimeoutError(f"{what} not ready within {timeout}s\n{detail}")


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def rss_kib(pid: int) -> int | None:
    """VmRSS of `pid` in KiB (None once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time `pid` has used so far (from /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pss_kib(pid: int) -> int | None:
    """Proportional set size (shared pages split between the processes sharing them), in KiB."""
    memory = worker_memory(pid)
    return memory["pss"] if memory else None


def worker_memory(pid: int) -> dict[str, int] | None:
    """RSS, PSS and USS of `pid` in KiB, from /proc/<pid>/smaps_rollup (None once it is gone).

    RSS counts every resident page, shared ones in full; PSS splits each shared page between the processes
    that map it; USS (Private_Clean + Private_Dirty) is what the process alone holds, i.e. what one more
    worker costs the host. With `preload_app` the import pages are shared with the master (copy-on-write),
    so RSS hardly moves while USS drops.
    """
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
                fields[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if "Rss" not in fields:
        return None
    return {
        "rss": fields["Rss"],
        "pss": fields.get("Pss", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    }


def mapped_libraries(pid: int, names: Sequence[str]) -> dict[str, bool]:
    """Which of `names` appear in the paths of /proc/<pid>/maps (e.g. uvloop, httptools)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return {name: False for name in names}
    return {name: f"/{name}/" in maps for name in names}


def mib(kib: int | float) -> float:
    return round(kib / 1024, 1)
