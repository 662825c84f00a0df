"""`/openapi.json`: a valid OpenAPI 3.1 document covering every endpoint, every `$ref` resolving, and a
schemathesis run over it against the live gateway (gunicorn, emulator upstream): no 5xx, no answer that
contradicts the document, on any endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.support import CLIENT_KEY, Emulator, Gateway, gateway_env, run_gateway

ENDPOINTS = {
    ("/v1/chat", "post"),
    ("/v1/chat/completions", "post"),
    ("/v1/messages", "post"),
    ("/v1/messages/count_tokens", "post"),
    ("/v1/models", "get"),
    ("/v1/models/{model_id}", "get"),
}
AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


@pytest.fixture(scope="module")
def fuzzed_gateway(emulator: Emulator) -> Iterator[Gateway]:
    """Its own rate-limit bucket, so that the run cannot starve the other tests' keys; a generous upstream
    timeout, so that a loaded machine cannot turn a slow emulator answer into a 504."""
    env = gateway_env(
        emulator,
        RATE_LIMIT_KEY_PREFIX=f"openapi-{uuid.uuid4().hex}",
        LLM_RETRY_ATTEMPTS="1",
        LLM_TIMEOUT_S="30",
    )
    with run_gateway(env) as gw:
        yield gw


@pytest.fixture(scope="module")
def document(fuzzed_gateway: Gateway) -> dict[str, Any]:
    response = httpx.get(f"{fuzzed_gateway.base_url}/openapi.json", timeout=10)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_document_covers_every_endpoint_and_every_ref_resolves(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations >= ENDPOINTS
    refs = set(_refs(document))
    assert refs, "the request bodies are described by components"
    for ref in refs:
        _resolve(document, ref)
    assert "$defs" not in str(document)
    for path, method in ENDPOINTS - {("/v1/models", "get"), ("/v1/models/{model_id}", "get")}:
        assert document["paths"][path][method]["requestBody"]["required"] is True


def test_every_client_endpoint_declares_both_key_schemes(document: dict[str, Any]) -> None:
    """The endpoints authenticate by hand (no FastAPI `Security` dependency to infer it from): a bearer
    token or the x-api-key header, either one."""
    schemes = document["components"]["securitySchemes"]
    by_kind = {(s["type"], s.get("scheme") or s.get("name")): name for name, s in schemes.items()}
    bearer, header = by_kind[("http", "bearer")], by_kind[("apiKey", "x-api-key")]
    assert schemes[header]["in"] == "header"
    for path, method in ENDPOINTS | {("/v1/usage", "get")}:
        assert document["paths"][path][method]["security"] == [{bearer: []}, {header: []}], path


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_no_server_error_and_no_schema_violation(
    document: dict[str, Any], fuzzed_gateway: Gateway, emulator: Emulator
) -> None:
    api = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in api.get_all_operations()]
    assert {(op.path, op.method.lower()) for op in operations} >= ENDPOINTS
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=fuzzed_gateway.base_url, headers=AUTH, timeout=60, checks=CHECKS)

        call()


@pytest.mark.parametrize(
    "extra", [{"stream": 0}, {"max_tokens": "5"}, {"temperature": "0.5"}, {"stream": "true"}]
)
def test_v1_chat_is_as_strict_as_its_schema(gateway: Gateway, emu: Emulator, extra: dict[str, Any]) -> None:
    with gateway.client() as client:
        response = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "hi"}], **extra})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_request"
    assert emu.requests() == []
