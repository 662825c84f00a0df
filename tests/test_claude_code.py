"""Claude Code itself (the npm package, pinned in scripts/ensure-claude-code.sh) in print mode against the
gateway, on a Claude model and on an OpenAI model, with one round trip through its read-only Read tool.

The emulator scripts the model's side: first a `Read` tool call for a file in the working directory, then a
final answer. Claude Code runs the tool itself and sends the file's content back through the gateway.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support import CLIENT_KEY, ROOT, Emulator, Gateway

FILE_CONTENT = "FILE-CONTENT-7781"
FINAL_ANSWER = "The file says FILE-CONTENT-7781."
GPT_OUTPUT_LIMIT = 16_384  # gpt-4o-mini's known output maximum; Claude Code asks for 32,000


def claude_binary() -> Path:
    found = sorted(
        (ROOT / ".tools/claude-code/node_modules/@anthropic-ai").glob("claude-code-linux-*/claude")
    )
    if not found:
        raise RuntimeError(
            "Claude Code is not installed: run `make services` (scripts/ensure-claude-code.sh)"
        )
    return found[0]


def run_claude_code(gateway: Gateway, emu: Emulator, *, model: str, provider: str) -> tuple[str, list[Any]]:
    """Run `claude -p` in a fresh directory with a scripted tool call; its output and the upstream records."""
    work = Path(tempfile.mkdtemp(prefix="claude-code-work-"))
    home = Path(tempfile.mkdtemp(prefix="claude-code-home-"))
    notes = work / "notes.txt"
    notes.write_text(f"{FILE_CONTENT}\n")
    emu.script(
        {"tool_calls": [{"name": "Read", "input": {"file_path": str(notes)}}]},
        {"text": FINAL_ANSWER},
        provider=provider,
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANTHROPIC_", "CLAUDE"))}
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=gateway.base_url,
        ANTHROPIC_API_KEY=CLIENT_KEY,
        ANTHROPIC_MODEL=model,
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    done = subprocess.run(
        [str(claude_binary()), "-p", "Read notes.txt and tell me what it says", "--allowedTools", "Read"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, emu.requests()


def test_claude_code_on_a_claude_model_reads_a_file_through_the_gateway(
    gateway: Gateway, emu: Emulator
) -> None:
    output, records = run_claude_code(gateway, emu, model="claude-haiku-4-5", provider="anthropic")
    assert FINAL_ANSWER in output
    calls = [r for r in records if r["path"] == "/v1/messages"]
    assert len(calls) == 2, [r["path"] for r in records]
    assert all(r["status"] == 200 and r["body"]["stream"] is True for r in calls)
    # Relayed as sent: the beta query and headers, thinking, cache_control and metadata reach Anthropic.
    assert all("beta=true" in (r.get("query") or "") for r in calls)
    assert "claude-code" in calls[0]["headers"]["anthropic-beta"]
    assert "metadata" in calls[0]["body"]
    # Claude Code ran the tool and sent its result back: the second request carries the file's content.
    last_turn = calls[1]["body"]["messages"][-1]
    results = [b for b in last_turn["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
    assert results and FILE_CONTENT in str(results[0]["content"])


def test_claude_code_on_an_openai_model_reads_a_file_through_the_gateway(
    gateway: Gateway, emu: Emulator
) -> None:
    output, records = run_claude_code(gateway, emu, model="gpt-4o-mini", provider="openai")
    assert FINAL_ANSWER in output
    calls = [r for r in records if r["path"].endswith("/chat/completions")]
    assert len(calls) == 2, [r["path"] for r in records]
    for record in calls:
        body = record["body"]
        assert record["status"] == 200 and body["model"] == "gpt-4o-mini" and body["stream"] is True
        # Claude Code asks for 32,000 tokens: clamped to the model's output maximum, never refused.
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        assert isinstance(limit, int) and limit <= GPT_OUTPUT_LIMIT
        # Anthropic-only fields never reach OpenAI.
        assert not {"thinking", "context_management", "metadata", "system"} & set(body)
        assert all(m["role"] in {"system", "user", "assistant", "tool"} for m in body["messages"])
    first_call = calls[0]["body"]["messages"]
    assert first_call[0]["role"] == "system"
    tool_messages = [m for m in calls[1]["body"]["messages"] if m["role"] == "tool"]
    assert tool_messages and FILE_CONTENT in str(tool_messages[-1]["content"])


@pytest.mark.parametrize("model", ["claude-haiku-4-5", "gpt-4o-mini"])
def test_claude_code_model_discovery_lists_gateway_models(gateway: Gateway, model: str) -> None:
    """What CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1 asks for: ids in Anthropic's shape."""
    with gateway.client() as client:
        response = client.get(
            "/v1/models", params={"limit": 1000}, headers={"anthropic-version": "2023-06-01"}
        )
    assert response.status_code == 200
    page = response.json()
    ids = [entry["id"] for entry in page["data"]]
    assert model in ids
    assert all(entry["type"] == "model" for entry in page["data"])
