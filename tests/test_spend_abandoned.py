"""A reservation whose request ends without anything settling or releasing it (a stream torn down before
its generator ever ran) is given back when the request ends, not left to expire after
SPEND_RESERVATION_TTL_S. The real RequestContextMiddleware around an ASGI app that reserves and then
answers without ever running its stream."""

from __future__ import annotations

from typing import Any

from llm_api.middleware import RequestContextMiddleware
from llm_api.services.spending import ChatSpend
from llm_api.spend import PriceTable
from llm_api.spend.guard import SpendGuard
from llm_api.spend.types import KeyLimits, TokenWindow

LIMITS = KeyLimits(tokens=(TokenWindow(10**6, 60),))


async def _serve(app: Any) -> None:
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/v1/messages", "headers": [], "query_string": b""}
    await RequestContextMiddleware(app, max_body_bytes=1024)(scope, receive, send)


async def test_a_stream_that_never_ran_gives_its_reservation_back_when_the_request_ends() -> None:
    guard = SpendGuard(prices=PriceTable(), default_limits=KeyLimits())
    held: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reservation = await guard.reserve(
            key_id="k", limits=LIMITS, model="claude-opus-4-5", input_tokens=100, max_output_tokens=900
        )
        ChatSpend.opened(guard, reservation, input_estimate=100)
        held.append((await guard.usage_snapshot("k", LIMITS)).minute_tokens)
        # The response goes out; the stream that would have settled the reservation never runs.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await _serve(app)
    assert held == [1000]
    assert (await guard.usage_snapshot("k", LIMITS)).minute_tokens == 0


async def test_a_settled_reservation_is_not_closed_twice() -> None:
    guard = SpendGuard(prices=PriceTable(), default_limits=KeyLimits())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reservation = await guard.reserve(
            key_id="k", limits=LIMITS, model="claude-opus-4-5", input_tokens=100, max_output_tokens=900
        )
        spend = ChatSpend.opened(guard, reservation, input_estimate=100)
        await spend.settle_estimated(40)  # the request's own ending: billed 100 in + 40 out
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await _serve(app)
    assert (await guard.usage_snapshot("k", LIMITS)).minute_tokens == 140
