"""The OpenAPI document: request bodies validated by hand (raw bytes, strict parsing) are described by
their Pydantic wire models, whose definitions are moved into `components.schemas` so every `$ref` of the
document resolves (`#/$defs/...` would point at the document's root, where nothing is); the routes that
authenticate by hand declare the client-key security schemes (FastAPI infers them only from `Security`
dependencies)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

COMPONENTS = "#/components/schemas/"
_DEFS_KEY = "x-llm-defs"  # carries a body's definitions from the route to the document, then removed

# The client key (`security.auth.presented_key`): a bearer token, or the x-api-key header without one.
BEARER = "ClientKeyBearer"
API_KEY = "ClientKeyHeader"
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    BEARER: {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
    API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "`x-api-key: <key>` (the anthropic SDK's header), read when there is no bearer",
    },
}
# `openapi_extra` of a route that requires a client key (either scheme).
CLIENT_KEY_SECURITY: dict[str, Any] = {"security": [{BEARER: []}, {API_KEY: []}]}


def _rename_refs(node: Any, names: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        renamed = {key: _rename_refs(value, names) for key, value in node.items()}
        ref = renamed.get("$ref")
        if isinstance(ref, str):
            for old, new in names.items():
                if ref in (f"#/$defs/{old}", f"{COMPONENTS}{old}"):
                    renamed["$ref"] = f"{COMPONENTS}{new}"
        return renamed
    if isinstance(node, list):
        return [_rename_refs(item, names) for item in node]
    return node


def request_body(
    schema: Mapping[str, Any], *, defs: Mapping[str, Any] | None = None, prefix: str = ""
) -> dict[str, Any]:
    """`openapi_extra` for a required JSON request body; the schema's definitions (its `$defs`, or
    `defs`) become components named `prefix + name`."""
    body = dict(schema)
    found = {**(defs or {}), **body.pop("$defs", {})}
    names = {name: f"{prefix}{name}" for name in found}
    body = _rename_refs(body, names)
    body[_DEFS_KEY] = {names[name]: _rename_refs(value, names) for name, value in found.items()}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}


def install_openapi(app: FastAPI) -> None:
    """Build the document once, with the request bodies' definitions among the components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, routes=app.routes, description=app.description
        )
        document.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        components = document["components"].setdefault("schemas", {})
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                content = operation.get("requestBody", {}).get("content", {})
                for media in content.values():
                    schema = media.get("schema", {})
                    if isinstance(schema, dict):
                        components.update(schema.pop(_DEFS_KEY, {}))
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
