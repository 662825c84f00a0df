"""The gateway file: the reference shape loads; each kind of mistake is reported with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_api.config import Settings
from llm_api.routing.config import GatewayConfigError, load_gateway_config, parse_gateway_config
from tests.routing_support import ENV, REFERENCE, config


def problems(text: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(GatewayConfigError) as caught:
        parse_gateway_config(text, path="gateway.yaml", environ=ENV if environ is None else environ)
    return dict(caught.value.problems)


def test_the_reference_file_loads_with_defaults_filled_in() -> None:
    cfg = config()
    assert [d.name for d in cfg.deployments] == ["claude-a", "claude-b", "openai", "local"]
    assert cfg.deployment("claude-a").api_key is not None
    assert cfg.deployment("claude-a").api_key.get_secret_value() == "sk-ant-a"
    assert cfg.deployment("openai").base_url == "https://api.openai.com/v1"  # the vendor's default
    assert cfg.deployment("local").api_key is None  # openai-compatible may have no key
    assert cfg.deployment("local").spec.capabilities is None
    assert cfg.deployment("claude-b").weight == 1 and cfg.deployment("claude-a").weight == 3
    assert [d.name for d in cfg.serving("claude-opus-4-5")] == ["claude-a", "claude-b"]
    assert [d.name for d in cfg.serving("o3")] == ["openai"]
    assert cfg.aliases["smart"].strategy == "fallback"
    assert cfg.router.max_attempts_total == 6
    assert cfg.router.deployment_strategy == "random-weighted"
    assert cfg.router.wait_for_probe_s == 0
    assert cfg.listed_models() == ["smart"]


def test_no_file_means_todays_behaviour() -> None:
    assert load_gateway_config(None) is None
    assert load_gateway_config("") is None


def test_the_file_is_read_from_gateway_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(REFERENCE)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    settings = Settings(allow_unauthenticated=True, gateway_config=str(path))
    cfg = load_gateway_config(settings.gateway_config)
    assert cfg is not None and cfg.path == path


def test_a_missing_file_is_named() -> None:
    with pytest.raises(GatewayConfigError, match=r"/nonexistent/gw.yaml is invalid:\n  cannot read the file"):
        load_gateway_config("/nonexistent/gw.yaml")


def test_unknown_keys_are_refused_with_their_path() -> None:
    text = REFERENCE.replace("weight: 3}", "weight: 3, region: eu}").replace(
        "max_attempts_total: 6", "max_attempts_total: 6\n  retries: 2"
    )
    assert problems(text) == {
        "deployments[0].region": "Extra inputs are not permitted",
        "router.retries": "Extra inputs are not permitted",
    }


def test_bad_values_name_their_path() -> None:
    text = (
        REFERENCE.replace("provider: openai,", "provider: azure,")
        .replace("weight: 1}", "weight: 0}")
        .replace("failures: 3", "failures: zero")
        .replace("strategy: fallback", "strategy: roundrobin")
    )
    found = problems(text)
    assert set(found) == {
        "deployments[2].provider",
        "deployments[1].weight",
        "router.cooldown.failures",
        "models.smart.strategy",
    }
    assert "'anthropic', 'openai' or 'openai-compatible'" in found["deployments[2].provider"]
    assert "greater than 0" in found["deployments[1].weight"]


def test_urls_are_checked() -> None:
    text = REFERENCE.replace('"http://vllm:8000/v1"', '"ftp://vllm/v1"').replace(
        '"https://api.anthropic.com"', '"https://user:pw@api.anthropic.com"'
    )
    found = problems(text)
    assert found["deployments[3].base_url"] == "must be an http:// or https:// URL with a host"
    assert found["deployments[1].base_url"] == "must not hold credentials (use api_key_env)"
    no_url = REFERENCE.replace(', base_url: "http://vllm:8000/v1"', "")
    assert problems(no_url) == {"deployments[3].base_url": "required for provider openai-compatible"}


def test_keys_come_from_the_environment_and_a_missing_one_is_named() -> None:
    found = problems(REFERENCE, environ={"ANTHROPIC_KEY_A": "x", "OPENAI_API_KEY": " "})
    assert found == {
        "deployments[1].api_key_env": "environment variable ANTHROPIC_KEY_B is not set (or empty)",
        "deployments[2].api_key_env": "environment variable OPENAI_API_KEY is not set (or empty)",
    }
    no_key = REFERENCE.replace(", api_key_env: OPENAI_API_KEY", "")
    assert problems(no_key) == {"deployments[2].api_key_env": "required for provider openai"}
    # A key in the file by mistake: `api_key_env` must be a variable's name.
    literal = REFERENCE.replace("api_key_env: OPENAI_API_KEY", 'api_key_env: "sk-proj-abc/def"')
    assert "deployments[2].api_key_env" in problems(literal)


def test_the_error_message_never_echoes_values() -> None:
    literal = REFERENCE.replace("api_key_env: OPENAI_API_KEY", 'api_key_env: "sk-secret-value!"')
    with pytest.raises(GatewayConfigError) as caught:
        parse_gateway_config(literal, path="gateway.yaml", environ=ENV)
    assert "sk-secret-value" not in str(caught.value)


def test_cross_entry_rules() -> None:
    text = (
        REFERENCE.replace("name: claude-b", "name: claude-a")
        .replace(
            "targets: [claude-opus-4-5, gpt-4o]", "targets: [claude-opus-4-5, mistral-large], weights: [1, 2]"
        )
        .replace('models: ["llama-*"]', 'models: ["llama-*"], capabilities: {tools: true}')
        .replace('models: ["gpt-*", "o*"]', 'models: ["gpt-*", "o*"], capabilities: {tools: true}')
    )
    assert problems(text) == {
        "deployments[1].name": "'claude-a' is already used by deployments[0]",
        "deployments[2].capabilities": "only for openai-compatible (vendor models use the built-in table)",
        "models.smart.targets[1]": "no deployment serves model 'mistral-large'",
        "models.smart.weights": "only for strategy: weighted",
    }
    weighted = REFERENCE.replace("strategy: fallback", "strategy: weighted, weights: [1]")
    assert problems(weighted) == {"models.smart.weights": "needs one weight per target (2)"}


def test_capabilities_of_an_openai_compatible_server_default_conservatively() -> None:
    text = REFERENCE.replace('models: ["llama-*"]', 'models: ["llama-*"], capabilities: {tools: true}')
    caps = config(text).deployment("local").spec.capabilities
    assert caps is not None
    assert (caps.tools, caps.vision, caps.response_format, caps.stream_usage) == (True, False, False, False)
    assert problems(text.replace("tools: true", "tools: true, audio: true")) == {
        "deployments[3].capabilities.audio": "Extra inputs are not permitted"
    }


def test_yaml_mistakes_name_their_line() -> None:
    assert list(problems("deployments: [\n  {name: a")) == ["line 2, column 11"]
    duplicate = REFERENCE.replace("weight: 3}", "weight: 3, weight: 4}")
    column = duplicate.splitlines()[2].index("weight: 4") + 1
    found = problems(duplicate)
    assert list(found) == [f"line 3, column {column}"]
    assert "duplicate key 'weight'" in found[f"line 3, column {column}"]
    assert problems("- just a list") == {"": "the file must hold a mapping with a `deployments` list"}
    assert problems("deployments: []") == {
        "deployments": "List should have at least 1 item after validation, not 0"
    }


def test_cache_settings_are_validated_at_start_up() -> None:
    with pytest.raises(ValueError, match="CACHE_ENABLED=true needs REDIS_URL"):
        Settings(allow_unauthenticated=True, cache_enabled=True)
    with pytest.raises(ValueError, match="cache_scope"):
        Settings(allow_unauthenticated=True, cache_scope="everyone")  # type: ignore[arg-type]
    settings = Settings(allow_unauthenticated=True, cache_enabled=True, redis_url="redis://127.0.0.1:6379/0")
    defaults = (settings.cache_ttl_s, settings.cache_scope, settings.cache_max_entry_bytes)
    assert defaults == (3600, "key", 1024 * 1024)
    assert Settings(allow_unauthenticated=True, gateway_config=" ").gateway_config is None
