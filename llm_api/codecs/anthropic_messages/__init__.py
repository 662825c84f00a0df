"""Anthropic's Messages API wire format: the only module that knows it, used in both directions.

Inbound (`POST /v1/messages`, `/v1/messages/count_tokens`): `validate_request` / `validate_count_tokens`,
`decode_request` (→ `Chat`), `encode_response` / `StreamEncoder` (neutral result or events → the client).
Outbound (the Anthropic adapter, when the client spoke another format): `encode_request` (`Chat` → body),
`decode_response` / `StreamDecoder` (upstream → neutral). Same-vendor relays forward the client's body and
the upstream's bytes untouched, change only what they must (`prepare_passthrough`) and read only what the
gateway needs (`PassthroughStreamObserver`, `usage_of`). Errors in Anthropic's shape: `error_body`,
`error_type_for_status`. Pure functions and classes: no I/O.
"""

from llm_api.codecs.anthropic_messages.count_tokens import estimate_input_tokens
from llm_api.codecs.anthropic_messages.errors import error_body, error_type_for_status
from llm_api.codecs.anthropic_messages.passthrough import (
    Passthrough,
    PassthroughStreamObserver,
    prepare_passthrough,
)
from llm_api.codecs.anthropic_messages.request import decode_request
from llm_api.codecs.anthropic_messages.request_encode import (
    EFFORT_BUDGETS,
    FORCED_JSON_TOOL,
    EncodedRequest,
    encode_request,
)
from llm_api.codecs.anthropic_messages.response import (
    decode_response,
    encode_response,
    message_id,
    stop_reason_of,
    usage_of,
)
from llm_api.codecs.anthropic_messages.stream import StreamDecoder, StreamEncoder, stream_error
from llm_api.codecs.anthropic_messages.validation import (
    request_json_schema,
    validate_count_tokens,
    validate_request,
    validation_details,
)
from llm_api.codecs.anthropic_messages.wire import CountTokensRequest, MessagesRequest

__all__ = [
    "EFFORT_BUDGETS",
    "FORCED_JSON_TOOL",
    "CountTokensRequest",
    "EncodedRequest",
    "MessagesRequest",
    "Passthrough",
    "PassthroughStreamObserver",
    "StreamDecoder",
    "StreamEncoder",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "error_body",
    "error_type_for_status",
    "estimate_input_tokens",
    "message_id",
    "prepare_passthrough",
    "request_json_schema",
    "stop_reason_of",
    "stream_error",
    "usage_of",
    "validate_count_tokens",
    "validate_request",
    "validation_details",
]
