"""The gateway file (`GATEWAY_CONFIG=<path>`): deployments, model aliases and the router's bounds.

Read once at start-up with PyYAML's safe loader (duplicate keys refused), validated with Pydantic (unknown
keys refused), then checked across entries (unique names, every alias target served, keys present in the
environment). Every problem is reported with its path inside the file, `deployments[2].base_url: ...`, all
of them at once. Secrets never sit in the file: `api_key_env` names the environment variable holding the key.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

Provider = Literal["anthropic", "openai", "openai-compatible"]

DEFAULT_BASE_URLS: Mapping[str, str] = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # safe inside a Redis hash tag and a metric label
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    """Per attempt, overriding LLM_TIMEOUT_S / LLM_CONNECT_TIMEOUT_S for one deployment."""

    request_s: Annotated[float, Field(gt=0)] | None = None
    connect_s: Annotated[float, Field(gt=0)] | None = None


class Capabilities(_Strict):
    """What an `openai-compatible` server accepts. The defaults are conservative: plain chat and streams."""

    tools: bool = False
    vision: bool = False
    response_format: bool = False
    reasoning: bool = False
    temperature: bool = True
    stream_usage: bool = False
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


class Deployment(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    provider: Provider
    base_url: str | None = None
    api_key_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = None
    models: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    weight: Annotated[float, Field(gt=0)] = 1.0
    timeouts: Timeouts | None = None
    capabilities: Capabilities | None = None

    def serves(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


class Alias(_Strict):
    strategy: Literal["fallback", "weighted"] = "fallback"
    targets: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    weights: list[Annotated[float, Field(gt=0)]] | None = None
    cache: bool | None = None


class Cooldown(_Strict):
    failures: Annotated[int, Field(ge=1)] = 3
    window_s: Annotated[float, Field(gt=0)] = 30.0
    cooldown_s: Annotated[float, Field(gt=0)] = 30.0


class RouterOptions(_Strict):
    max_attempts_total: Annotated[int, Field(ge=1, le=100)] = 6
    cooldown: Cooldown = Cooldown()
    deployment_strategy: Literal["random-weighted", "least-busy"] = "random-weighted"
    wait_for_probe_s: Annotated[float, Field(ge=0, le=60)] = 0.0


class GatewayFile(_Strict):
    """The file as written (before the cross-entry checks and key resolution)."""

    deployments: Annotated[list[Deployment], Field(min_length=1)]
    models: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Alias] = Field(default_factory=dict)
    router: RouterOptions = RouterOptions()


@dataclass(frozen=True, slots=True)
class ResolvedDeployment:
    """A deployment ready to build a client from: effective base URL, the key read from the environment."""

    spec: Deployment
    base_url: str
    api_key: SecretStr | None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def provider(self) -> Provider:
        return self.spec.provider

    @property
    def weight(self) -> float:
        return self.spec.weight


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The validated file with its keys resolved; what the router is built from."""

    path: Path
    deployments: tuple[ResolvedDeployment, ...]
    aliases: Mapping[str, Alias]
    router: RouterOptions

    def deployment(self, name: str) -> ResolvedDeployment:
        for deployment in self.deployments:
            if deployment.name == name:
                return deployment
        raise KeyError(name)

    def serving(self, model: str) -> tuple[ResolvedDeployment, ...]:
        """The deployments whose `models` (names or globs) match `model`, in file order."""
        return tuple(d for d in self.deployments if d.spec.serves(model))

    def listed_models(self) -> list[str]:
        """What `GET /v1/models` lists: the aliases, then every model named without a glob."""
        names = list(self.aliases)
        for deployment in self.deployments:
            for pattern in deployment.spec.models:
                if not _is_glob(pattern) and pattern not in names:
                    names.append(pattern)
        return names


class GatewayConfigError(ValueError):
    """The file cannot be used; `problems` are (path inside the file, message) pairs."""

    def __init__(self, path: Path | str, problems: Sequence[tuple[str, str]]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        lines = "\n".join(f"  {where}: {message}" if where else f"  {message}" for where, message in problems)
        super().__init__(f"GATEWAY_CONFIG {self.path} is invalid:\n{lines}")


def load_gateway_config(
    path: Path | str | None, *, environ: Mapping[str, str] | None = None
) -> GatewayConfig | None:
    """The validated gateway file, or None without one (then `claude*` goes to Anthropic, the rest to
    OpenAI, as before). Raises GatewayConfigError naming every problem with its path in the file."""
    if path is None or str(path) == "":
        return None
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GatewayConfigError(path, [("", f"cannot read the file ({exc.strerror or exc})")]) from None
    return parse_gateway_config(text, path=path, environ=os.environ if environ is None else environ)


def parse_gateway_config(text: str, *, path: Path | str, environ: Mapping[str, str]) -> GatewayConfig:
    """Validate the YAML `text` (the content of `path`) and resolve its keys from `environ`."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise GatewayConfigError(path, [(where, f"not valid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise GatewayConfigError(path, [("", f"not valid YAML: {exc}")]) from None
    if not isinstance(raw, dict):
        raise GatewayConfigError(path, [("", "the file must hold a mapping with a `deployments` list")])
    try:
        parsed = GatewayFile.model_validate(raw)
    except ValidationError as exc:
        raise GatewayConfigError(
            path, [(_location(error["loc"]), error["msg"]) for error in exc.errors()]
        ) from None
    problems = _check(parsed)
    deployments: list[ResolvedDeployment] = []
    for index, deployment in enumerate(parsed.deployments):
        key, problem = _resolve_key(deployment, environ)
        if problem is not None:
            problems.append((f"deployments[{index}].api_key_env", problem))
        base_url = deployment.base_url or DEFAULT_BASE_URLS.get(deployment.provider, "")
        deployments.append(ResolvedDeployment(spec=deployment, base_url=base_url.rstrip("/"), api_key=key))
    if problems:
        raise GatewayConfigError(path, problems)
    return GatewayConfig(
        path=Path(path), deployments=tuple(deployments), aliases=dict(parsed.models), router=parsed.router
    )


def _check(parsed: GatewayFile) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for index, deployment in enumerate(parsed.deployments):
        where = f"deployments[{index}]"
        if deployment.name in seen:
            problems.append(
                (
                    f"{where}.name",
                    f"'{deployment.name}' is already used by deployments[{seen[deployment.name]}]",
                )
            )
        seen.setdefault(deployment.name, index)
        if deployment.base_url is not None:
            problem = _url_problem(deployment.base_url)
            if problem:
                problems.append((f"{where}.base_url", problem))
        elif deployment.provider == "openai-compatible":
            problems.append((f"{where}.base_url", "required for provider openai-compatible"))
        if deployment.api_key_env is None and deployment.provider != "openai-compatible":
            problems.append((f"{where}.api_key_env", f"required for provider {deployment.provider}"))
        if deployment.capabilities is not None and deployment.provider != "openai-compatible":
            problems.append(
                (f"{where}.capabilities", "only for openai-compatible (vendor models use the built-in table)")
            )
    for alias_name, alias in parsed.models.items():
        where = f"models.{alias_name}"
        for position, target in enumerate(alias.targets):
            if not any(d.serves(target) for d in parsed.deployments):
                problems.append((f"{where}.targets[{position}]", f"no deployment serves model '{target}'"))
        if len(set(alias.targets)) != len(alias.targets):
            problems.append((f"{where}.targets", "a model is listed twice"))
        if alias.weights is not None:
            if alias.strategy != "weighted":
                problems.append((f"{where}.weights", "only for strategy: weighted"))
            elif len(alias.weights) != len(alias.targets):
                problems.append((f"{where}.weights", f"needs one weight per target ({len(alias.targets)})"))
    return problems


def _resolve_key(deployment: Deployment, environ: Mapping[str, str]) -> tuple[SecretStr | None, str | None]:
    if deployment.api_key_env is None:
        return None, None
    value = environ.get(deployment.api_key_env, "").strip()
    if not value:
        return None, f"environment variable {deployment.api_key_env} is not set (or empty)"
    return SecretStr(value), None


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "must not hold credentials (use api_key_env)"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    return None


def _location(loc: Sequence[int | str]) -> str:
    """Pydantic's location tuple as a path: ('deployments', 2, 'base_url') -> deployments[2].base_url."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML silently keeps the last)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"duplicate key '{key}'", key_node.start_mark
            )
        keys.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)
