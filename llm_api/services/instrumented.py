"""ChatService with telemetry: one CLIENT span per upstream chat call, per the OpenTelemetry GenAI
semantic conventions, and the GenAI client metrics. It wraps the service, so it wraps every adapter.

Span `chat {model}`: gen_ai.operation.name, gen_ai.provider.name (and the older gen_ai.system),
gen_ai.request.{model,max_tokens,temperature,stream}, gen_ai.response.{id,model,finish_reasons},
gen_ai.usage.{input,output}_tokens, gen_ai.response.time_to_first_chunk (streams), error.type on failure,
llm_api.key_id / llm_api.request_id, and one `retry` event per retried attempt.
Prompt and completion text are never recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from llm_api.chat_model import ChatResult
from llm_api.routing.cache import ResponseCache
from llm_api.routing.router import Router
from llm_api.services.capabilities import CapabilityTable
from llm_api.services.llm import ChatService, PreparedCall
from llm_api.services.providers.base import Outcome, RelayedResponse, StreamItem
from llm_api.services.providers.registry import ProviderRegistry
from llm_api.services.retry import RetryPolicy
from llm_api.utils.context import request_context
from llm_api.utils.metrics import GatewayMetrics

CANCELLED = "cancelled"
T = TypeVar("T")


def error_type(exc: BaseException) -> str:
    """A low-cardinality name for a failure: the gateway's error type, else the exception class."""
    if isinstance(exc, GeneratorExit | asyncio.CancelledError):
        return CANCELLED
    found = getattr(exc, "error_type", None)
    return found if isinstance(found, str) else type(exc).__qualname__


class InstrumentedChatService(ChatService):
    """Traces and measures every `complete` and `stream` call of the plain service."""

    def __init__(
        self,
        *,
        tracer: trace.Tracer,
        metrics: GatewayMetrics,
        providers: ProviderRegistry,
        capabilities: CapabilityTable,
        retry_policy: RetryPolicy,
        default_model: str,
        drop_unsupported_params: bool,
        router: Router | None = None,
        cache: ResponseCache | None = None,
        cache_enabled: bool = False,
    ) -> None:
        super().__init__(
            router=router,
            cache=cache,
            cache_enabled=cache_enabled,
            providers=providers,
            capabilities=capabilities,
            retry_policy=retry_policy,
            default_model=default_model,
            drop_unsupported_params=drop_unsupported_params,
            on_retry=self._record_retry,
        )
        self._tracer = tracer
        self._metrics = metrics

    async def complete(self, call: PreparedCall) -> ChatResult:
        """One neutral answer, inside a `chat {model}` span."""
        return await self._traced(call, super().complete(call))

    async def relay(self, call: PreparedCall) -> RelayedResponse:
        """One same-vendor answer, inside a `chat {model}` span."""
        return await self._traced(call, super().relay(call))

    async def _traced(self, call: PreparedCall, operation: Awaitable[T]) -> T:
        span, metric_attributes = self._start(call, stream=False)
        started = time.perf_counter()
        try:
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                result = await operation
        except BaseException as exc:
            self._fail(span, exc, started=started, attributes=metric_attributes)
            raise
        assert isinstance(result, ChatResult | RelayedResponse)
        self._succeed(span, result, started=started, attributes=metric_attributes)
        return result

    async def stream(self, call: PreparedCall) -> AsyncGenerator[StreamItem, None]:
        """Items as they arrive; the span opens with the stream and ends when the stream ends."""
        span, metric_attributes = self._start(call, stream=True)
        started = time.perf_counter()
        items = super().stream(call)
        outcome: Outcome | None = None
        first_chunk = False
        try:
            while True:
                if first_chunk:
                    # Past the first item nothing is retried and no span starts: skip the context switch,
                    # which would cost on every chunk.
                    try:
                        item = await anext(items)
                    except StopAsyncIteration:
                        break
                else:
                    # The span is current while the stream opens (retries happen there), attached and
                    # detached within one step of this generator.
                    with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                        try:
                            item = await anext(items)
                        except StopAsyncIteration:
                            break
                if not first_chunk and not isinstance(item, Outcome):
                    first_chunk = True
                    ttft_s = time.perf_counter() - started
                    span.set_attribute("gen_ai.response.time_to_first_chunk", ttft_s)
                    span.add_event("gen_ai.first_chunk")
                    self._metrics.record_time_to_first_chunk(ttft_s, attributes=metric_attributes)
                elif isinstance(item, Outcome):
                    outcome = item
                yield item
        except BaseException as exc:
            await items.aclose()
            self._fail(span, exc, started=started, attributes=metric_attributes)
            raise
        await items.aclose()
        self._succeed(span, outcome, started=started, attributes=metric_attributes)

    def _start(self, call: PreparedCall, *, stream: bool) -> tuple[Span, dict[str, AttributeValue]]:
        request = call.request
        provider = call.provider.name
        metric_attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": request.model,
        }
        attributes: dict[str, AttributeValue] = {
            **metric_attributes,
            "gen_ai.system": provider,
            "gen_ai.request.stream": stream,
        }
        if call.deployment is not None:
            attributes["llm_api.deployment"] = call.deployment
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        context = request_context()
        if context is not None:
            attributes["llm_api.request_id"] = context.request_id
            if context.key_id is not None:
                attributes["llm_api.key_id"] = context.key_id
                # The server span (current here) gets the key id too, for searching by caller.
                trace.get_current_span().set_attribute("llm_api.key_id", context.key_id)
        span = self._tracer.start_span(f"chat {request.model}", kind=SpanKind.CLIENT, attributes=attributes)
        return span, metric_attributes

    def _succeed(
        self,
        span: Span,
        outcome: ChatResult | RelayedResponse | Outcome | None,
        *,
        started: float,
        attributes: dict[str, AttributeValue],
    ) -> None:
        """End the span with the response's ids, finish reason and usage (a stream may end without them)."""
        final = dict(attributes)
        if outcome is not None:
            response: dict[str, AttributeValue] = {}  # set in one call: one lock, not one per attribute
            if outcome.id:
                response["gen_ai.response.id"] = outcome.id
            if outcome.model:
                response["gen_ai.response.model"] = outcome.model
                final["gen_ai.response.model"] = outcome.model
            if outcome.stop_reason is not None:
                response["gen_ai.response.finish_reasons"] = [outcome.stop_reason]
            # OpenTelemetry's input tokens include the cached ones (OpenAI's prompt_tokens).
            input_tokens = outcome.usage.prompt_tokens
            output_tokens = outcome.usage.output_tokens
            response["gen_ai.usage.input_tokens"] = input_tokens
            response["gen_ai.usage.output_tokens"] = output_tokens
            self._metrics.record_token_usage(
                input_tokens=input_tokens, output_tokens=output_tokens, attributes=final
            )
            span.set_attributes(response)
        self._end(span, started=started, attributes=final)

    def _fail(
        self, span: Span, exc: BaseException, *, started: float, attributes: dict[str, AttributeValue]
    ) -> None:
        kind = error_type(exc)
        span.set_attribute("error.type", kind)
        if kind != CANCELLED:
            # The description is the type only: exception messages can quote request data.
            span.set_status(Status(StatusCode.ERROR, kind))
        self._end(span, started=started, attributes={**attributes, "error.type": kind})

    def _end(self, span: Span, *, started: float, attributes: dict[str, AttributeValue]) -> None:
        context = request_context()
        if context is not None and context.attempts:
            span.set_attribute("llm_api.attempts", context.attempts)
        span.end()
        self._metrics.record_operation(time.perf_counter() - started, attributes=attributes)

    @staticmethod
    def _record_retry(*, attempt: int, error: BaseException, wait_s: float) -> None:
        trace.get_current_span().add_event(
            "retry",
            {"retry.attempt": attempt, "error.type": error_type(error), "retry.wait_s": round(wait_s, 3)},
        )
