"""The first-run path: `make run` with no provider keys starts the emulator and prints working curl lines."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.support import ROOT, free_port, wait_until


def test_make_run_prints_curl_lines_that_work() -> None:
    port, emulator_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("ANTHROPIC_", "OPENAI_", "API_KEY", "OTEL_", "REDIS_", "RATE_LIMIT", "DATABASE_")
        )
    }
    env.update(
        {"BIND": f"127.0.0.1:{port}", "EMULATOR_PORT": str(emulator_port), "OTEL_SDK_DISABLED": "true"}
    )
    log = Path(tempfile.mkstemp(prefix="make-run-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def printed() -> str | None:
            text = log.read_text()
            return text if "curl -N" in text else None

        text = wait_until(printed, timeout=60)
        curls = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
        assert len(curls) == 2, text
        plain, streaming = curls
        assert re.search(r"Authorization: Bearer dev-\S+'", plain)
        assert f"localhost:{port}" in plain

        def run(line: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=30)

        def answered() -> subprocess.CompletedProcess[str] | None:
            result = run(plain)
            return result if result.returncode == 0 and result.stdout else None

        result = wait_until(answered, timeout=60, interval=0.2)
        assert '"content":"Hello from the emulator."' in result.stdout, result.stdout
        streamed = run(streaming)
        assert 'data: {"delta":"Hello"}' in streamed.stdout
        assert streamed.stdout.rstrip().endswith("data: [DONE]")
        assert "./data/llm_api.db" in text and (ROOT / "data" / "llm_api.db").is_file()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert log.read_text().count("Say hello") == 2  # in the two printed curl lines, never in a log line
