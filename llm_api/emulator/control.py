"""The control plane under ``/_emulator/``: script behaviour, inspect what was received."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Receive, Send

from llm_api.emulator.exchange import read_body, send_plain_json
from llm_api.emulator.parsing import merge_config, parse_faults, parse_models, parse_turns
from llm_api.emulator.state import ControlError, EmulatorState

PREFIX = "/_emulator"

_ROUTES: dict[str, tuple[str, ...]] = {
    "/health": ("GET",),
    "/reset": ("POST",),
    "/config": ("GET", "POST"),
    "/faults": ("GET", "POST", "DELETE"),
    "/turns": ("GET", "POST", "DELETE"),
    "/models": ("GET", "POST", "DELETE"),
    "/requests": ("GET", "DELETE"),
    "/stats": ("GET",),
}


async def handle_control(state: EmulatorState, method: str, path: str, receive: Receive, send: Send) -> None:
    """Dispatch ``method path`` (path includes the prefix)."""
    raw, gone = await read_body(receive)
    if gone:
        return
    route = path[len(PREFIX) :].rstrip("/") or "/"
    try:
        status, payload = _dispatch(state, method, route, raw)
    except ControlError as exc:
        status, payload = 400, {"error": str(exc)}
    await send_plain_json(send, status, payload)


def _json(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ControlError(f"invalid JSON: {exc}") from None


def _dispatch(state: EmulatorState, method: str, route: str, raw: bytes) -> tuple[int, Any]:
    if route not in _ROUTES:
        return 404, {"error": f"unknown control endpoint {route!r}"}
    if method not in _ROUTES[route]:
        return 405, {"error": f"method {method} not allowed on {route}"}
    if route == "/health":
        return 200, {"ok": True}
    if route == "/reset":
        state.reset()
        return 200, {"ok": True}
    if route == "/config":
        if method == "POST":
            state.config = merge_config(state.config, _json(raw))
        return 200, state.config.to_json()
    if route == "/faults":
        if method == "POST":
            state.faults.extend(parse_faults(_json(raw)))
        elif method == "DELETE":
            state.faults.clear()
        return 200, {"queued": len(state.faults), "faults": [f.to_json() for f in state.faults]}
    if route == "/turns":
        if method == "POST":
            state.turns.extend(parse_turns(_json(raw)))
        elif method == "DELETE":
            state.turns.clear()
        return 200, {"queued": len(state.turns), "turns": [t.to_json() for t in state.turns]}
    if route == "/models":
        if method == "POST":
            state.models = parse_models(_json(raw))
        elif method == "DELETE":
            state.reset_models()
        return 200, {"models": [m.to_json() for m in state.models]}
    if route == "/requests":
        if method == "DELETE":
            state.records.clear()
            return 200, []
        return 200, [record.to_json() for record in state.records]
    return 200, state.stats()
