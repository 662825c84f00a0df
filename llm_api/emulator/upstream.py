"""The request flow shared by both emulated providers: record, check, apply faults, answer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import orjson
from starlette.types import Receive, Scope, Send

from llm_api.emulator.exchange import Exchange, lower_headers, read_body
from llm_api.emulator.state import EmulatorState, Fault, Provider


@dataclass
class ErrorReply:
    """An HTTP error answer in a provider's own wire format."""

    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


class ProviderAPI(Protocol):
    """What a provider module implements; :func:`handle_upstream` does the rest."""

    name: Provider

    def request_headers(self) -> dict[str, str]:
        """Headers sent with every answer (request ids and the like)."""
        ...

    def check_request(
        self, path: str, headers: dict[str, str], body: Any, state: EmulatorState
    ) -> ErrorReply | None:
        """Authentication, JSON and validation checks, in that order."""
        ...

    def error_reply(self, status: int, error_type: str | None, message: str | None) -> ErrorReply:
        """The error body the provider answers for ``status`` (type chosen from status)."""
        ...

    def status_for_error_type(self, error_type: str | None) -> int:
        """The HTTP status for an error type (non-stream mid-generation faults)."""
        ...

    async def respond(
        self,
        ex: Exchange,
        path: str,
        body: dict[str, Any],
        state: EmulatorState,
        fault: Fault | None,
    ) -> None:
        """A successful answer (JSON or SSE); honours ``fault.fail_after_chunks`` in streams."""
        ...


class InvalidJSON:
    """Stands in for a body that could not be parsed; recorded as its repr-free text."""

    def __init__(self, text: str) -> None:
        self.text = text


SECRET_HEADERS: tuple[str, ...] = ("authorization", "x-api-key", "api-key", "proxy-authorization", "cookie")


def fingerprint(secret: str) -> str:
    """What the record keeps of a credential: enough to tell which key arrived, not the key."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


def recorded_headers(headers: dict[str, str]) -> dict[str, str]:
    """The request headers, each credential replaced by its fingerprint (``Bearer sha256:...``)."""
    result = dict(headers)
    for name in SECRET_HEADERS:
        value = result.get(name)
        if value is None:
            continue
        scheme, _, rest = value.partition(" ")
        if name.endswith("authorization") and rest:
            result[name] = f"{scheme} {fingerprint(rest.strip())}"
        else:
            result[name] = fingerprint(value.strip())
    return result


def fault_headers(fault: Fault) -> dict[str, str]:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["retry-after"] = fault.retry_after
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = fault.retry_after_ms
    return headers


async def handle_upstream(
    api: ProviderAPI, state: EmulatorState, scope: Scope, receive: Receive, send: Send
) -> None:
    path: str = scope["path"]
    raw, gone = await read_body(receive)
    headers = lower_headers(scope)
    body: Any
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = InvalidJSON(raw.decode("utf-8", "replace"))
    record = state.new_record(
        api.name,
        method=scope["method"],
        path=path,
        query=scope.get("query_string", b"").decode("latin-1"),
        body=body.text if isinstance(body, InvalidJSON) else body,
        body_bytes=len(raw),
        headers=recorded_headers(headers),
    )
    record.stream = isinstance(body, dict) and body.get("stream") is True
    ex = Exchange(receive, send, record)
    if gone:
        ex.mark_disconnected()
        await ex.close()
        return
    ex.start_watching()
    try:
        error = api.check_request(path, headers, body, state)
        if error is not None:
            await ex.send_json(error.status, error.payload, {**api.request_headers(), **error.headers})
            return
        fault = state.pop_fault(api.name)
        if fault is not None:
            record.fault = fault.to_json()
        await _answer(api, ex, path, cast(dict[str, Any], body), state, fault)
    finally:
        await ex.close()


async def _answer_garbage(ex: Exchange) -> None:
    if not ex.record.stream:
        await ex.send_json(200, ["not", "a", "completion"])
    elif await ex.start_stream() and await ex.send_event(b"data: {not json\n\n"):
        await ex.end_stream()


async def _answer(
    api: ProviderAPI,
    ex: Exchange,
    path: str,
    body: dict[str, Any],
    state: EmulatorState,
    fault: Fault | None,
) -> None:
    if fault is not None:
        if fault.delay_s > 0 and not await ex.sleep(fault.delay_s):
            return
        if fault.hang:
            await ex.wait_for_disconnect()
            return
        if fault.drop:
            await ex.drop()
            return
        if fault.garbage:
            await _answer_garbage(ex)
            return
        status = fault.status
        if status is None and fault.fail_after_chunks is not None and not ex.record.stream:
            # A mid-generation failure of a non-streaming request is an HTTP error.
            status = api.status_for_error_type(fault.error_type)
        if status is not None:
            error = api.error_reply(status, fault.error_type, fault.message)
            headers = {**api.request_headers(), **error.headers, **fault_headers(fault)}
            await ex.send_json(error.status, error.payload, headers)
            return
    await api.respond(ex, path, body, state, fault)
