"""An emulator of the Anthropic Messages and OpenAI Chat Completions HTTP APIs, for tests.

Run it with ``python -m llm_api.emulator --host 127.0.0.1 --port 8900`` (one process: all
state is in memory). Upstream endpoints: ``POST /v1/messages``, ``POST /v1/messages/count_tokens``
(Anthropic), ``POST /v1/chat/completions`` (OpenAI), JSON or SSE (``"stream": true``), and
``GET /v1/models[/{id}]`` (Anthropic's shape when the request carries ``anthropic-version``).

Control plane (JSON; the README's emulator section has the full table):

* ``POST /_emulator/reset`` -> ``{"ok": true}``: clear config, turns, faults, models and records.
* ``GET|POST /_emulator/config`` -> the full config. POST merges the given fields
  (see :class:`EmulatorConfig`); they apply to every request until reset.
* ``GET|POST|DELETE /_emulator/turns``: a FIFO of scripted answers (text and/or tool calls),
  one consumed per generating request (see :class:`Turn`).
* ``GET|POST|DELETE /_emulator/faults`` -> ``{"queued": n, "faults": [...]}``. POST body
  ``{"faults": [{...}], "provider": "anthropic"|"openai"|null}`` appends to a FIFO queue;
  each upstream request takes the oldest fault for its provider (see :class:`Fault`).
* ``GET|POST|DELETE /_emulator/models``: the model catalogue (POST replaces, DELETE restores).
* ``GET|DELETE /_emulator/requests`` -> the newest records (see :class:`RequestRecord`), at most
  ``EMULATOR_MAX_RECORDS`` (1000) of them and about ``EMULATOR_MAX_RECORD_BYTES`` of bodies.
* ``GET /_emulator/stats`` -> request counts per provider since reset, in-progress count.
* ``GET /_emulator/health`` -> ``{"ok": true}``.
"""

from llm_api.emulator.app import EmulatorApp, create_emulator_app
from llm_api.emulator.state import EmulatorConfig, EmulatorState, Fault, RequestRecord, Turn

__all__ = [
    "EmulatorApp",
    "EmulatorConfig",
    "EmulatorState",
    "Fault",
    "RequestRecord",
    "Turn",
    "create_emulator_app",
]
