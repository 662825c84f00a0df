"""The emulator's structured answers: a JSON schema in, a valid instance out (property tests)."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_api.emulator.schema_instance import instance_of

_scalars: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.builds(
        lambda lo, span, exclusive: (
            {"type": "integer", "minimum": lo, "maximum": lo + span}
            if not exclusive
            else {"type": "integer", "exclusiveMinimum": lo, "exclusiveMaximum": lo + span + 2}
        ),
        st.integers(-1000, 1000),
        st.integers(0, 50),
        st.booleans(),
    ),
    st.builds(lambda lo: {"type": "number", "minimum": lo}, st.floats(-1e6, 1e6)),
    st.builds(
        lambda lo, extra: {"type": "string", "minLength": lo, "maxLength": lo + extra},
        st.integers(0, 20),
        st.integers(0, 20),
    ),
    st.sampled_from(
        [
            {"type": "string", "format": f}
            for f in ("date-time", "date", "email", "uri", "uuid", "ipv4", "hostname")
        ]
    ),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(st.text(max_size=5) | st.integers(), min_size=1, max_size=4, unique=True).map(
        lambda v: {"enum": v}
    ),
    st.integers().map(lambda v: {"const": v}),
)

_NAMES = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)


def _compound(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    objects = st.dictionaries(_NAMES, children, max_size=4).flatmap(
        lambda props: st.builds(
            lambda required, closed: {
                "type": "object",
                "properties": props,
                "required": sorted(required),
                **({"additionalProperties": False} if closed else {}),
            },
            st.sets(st.sampled_from(sorted(props))) if props else st.just(set()),
            st.booleans(),
        )
    )
    arrays = st.builds(
        lambda items, low: {"type": "array", "items": items, "minItems": low},
        children,
        st.integers(0, 3),
    )
    unions = st.lists(children, min_size=1, max_size=3).map(lambda options: {"anyOf": options})
    nullable = children.map(lambda s: {"anyOf": [s, {"type": "null"}]})
    return st.one_of(objects, arrays, unions, nullable)


schemas = st.recursive(_scalars, _compound, max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(schemas)
def test_instance_is_valid(schema: dict[str, Any]) -> None:
    jsonschema.validate(instance_of(schema), schema)


@settings(max_examples=50, deadline=None)
@given(schemas, _NAMES)
def test_refs_to_defs_resolve(schema: dict[str, Any], name: str) -> None:
    root = {
        "type": "object",
        "properties": {
            "value": {"$ref": f"#/$defs/{name}"},
            "more": {"allOf": [{"$ref": f"#/$defs/{name}"}]},
        },
        "required": ["value", "more"],
        "$defs": {name: schema},
    }
    jsonschema.validate(instance_of(root), root)
