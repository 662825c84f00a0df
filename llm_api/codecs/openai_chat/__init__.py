"""The OpenAI Chat Completions codec: the one place that knows that wire format, in both directions.

Inbound (`POST /v1/chat/completions`): `validate_request` → `decode_request` → neutral `Chat`; a neutral
`ChatResult` → `encode_response`, neutral stream events → `StreamEncoder`. Outbound (the OpenAI
adapter): `encode_request` → body; `decode_response` / `StreamDecoder` → neutral. Same-vendor relays:
`prepare_passthrough`, `PassthroughStreamObserver`, `usage_of`. Errors in OpenAI's shape: `error_body`,
`error_type_for_status`. Pure functions and classes: no I/O.
"""

from llm_api.codecs.openai_chat._common import (
    EXTRAS_KEY,
    RAW_ARGUMENTS,
    completion_id,
    finish_reason_of,
    stop_reason_of,
)
from llm_api.codecs.openai_chat.decode import DEFAULT_VALUES, MAPPED_FIELDS, decode_request, is_default
from llm_api.codecs.openai_chat.encode import EncodedRequest, encode_request, reasoning_effort
from llm_api.codecs.openai_chat.errors import error_body, error_type_for_status
from llm_api.codecs.openai_chat.passthrough import Passthrough, PassthroughStreamObserver, prepare_passthrough
from llm_api.codecs.openai_chat.response import decode_response, encode_response, usage_of
from llm_api.codecs.openai_chat.stream import DONE_FRAME, StreamDecoder, StreamEncoder, stream_error
from llm_api.codecs.openai_chat.validation import param_of, validate_request
from llm_api.codecs.openai_chat.wire import ChatCompletionRequest, request_json_schema

__all__ = [
    "DEFAULT_VALUES",
    "DONE_FRAME",
    "EXTRAS_KEY",
    "MAPPED_FIELDS",
    "RAW_ARGUMENTS",
    "ChatCompletionRequest",
    "EncodedRequest",
    "Passthrough",
    "PassthroughStreamObserver",
    "StreamDecoder",
    "StreamEncoder",
    "completion_id",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "error_body",
    "error_type_for_status",
    "finish_reason_of",
    "is_default",
    "param_of",
    "prepare_passthrough",
    "reasoning_effort",
    "request_json_schema",
    "stop_reason_of",
    "stream_error",
    "usage_of",
    "validate_request",
]
