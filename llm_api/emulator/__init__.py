"""An emulator of the Anthropic Messages and OpenAI Chat Completions HTTP APIs, for tests.

Run it with ``python -m llm_api.emulator --host 127.0.0.1 --port 8900`` (one process: all
state is in memory). Upstream endpoints: ``POST /v1/messages``, ``POST /v1/messages/count_tokens``
(Anthropic) and ``POST /v1/chat/completions`` (OpenAI), JSON or SSE (``"stream": true``).

Control plane (JSON):

* ``POST /_emulator/reset`` -> ``{"ok": true}``: clear config, fault queue and records.
* ``GET|POST /_emulator/config`` -> the full config. POST merges the given fields:
  ``text``, ``chunks``, ``blocks``, ``first_token_delay_s``, ``chunk_delay_s``,
  ``stop_reason``, ``ping_before_first`` (see :class:`EmulatorConfig`).
* ``GET|POST|DELETE /_emulator/faults`` -> ``{"queued": n, "faults": [...]}``. POST body
  ``{"faults": [{...}], "provider": "anthropic"|"openai"|null}`` appends to a FIFO queue;
  each upstream request takes the oldest fault for its provider (see :class:`Fault`).
* ``GET /_emulator/requests`` -> list of records (see :class:`RequestRecord`).
* ``GET /_emulator/stats`` -> ``{"requests": {"anthropic": n, "openai": n}, "in_progress": n}``.
* ``GET /_emulator/health`` -> ``{"ok": true}``.
"""

from llm_api.emulator.app import EmulatorApp, create_emulator_app
from llm_api.emulator.state import EmulatorConfig, EmulatorState, Fault, RequestRecord

__all__ = [
    "EmulatorApp",
    "EmulatorConfig",
    "EmulatorState",
    "Fault",
    "RequestRecord",
    "create_emulator_app",
]
