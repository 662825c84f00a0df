"""The emulator as a raw ASGI application.

Raw ASGI rather than Starlette routing because the emulator needs the bare ``receive`` /
``send`` pair: to watch for ``http.disconnect`` while streaming or hanging, and to drop a
connection without any response (see :meth:`Exchange.drop`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from llm_api.emulator.anthropic_api import COUNT_TOKENS_PATH, MESSAGES_PATH, AnthropicAPI
from llm_api.emulator.control import PREFIX, handle_control
from llm_api.emulator.exchange import read_body, send_plain_json
from llm_api.emulator.models_api import MODELS_PATH, AnthropicModelsAPI, OpenAIModelsAPI
from llm_api.emulator.openai_api import CHAT_PATH, OpenAIAPI
from llm_api.emulator.state import EmulatorState
from llm_api.emulator.upstream import ProviderAPI, handle_upstream


class EmulatorApp:
    def __init__(self, state: EmulatorState | None = None) -> None:
        self.state = state or EmulatorState()
        anthropic = AnthropicAPI()
        openai = OpenAIAPI()
        self.routes: dict[str, ProviderAPI] = {
            MESSAGES_PATH: anthropic,
            COUNT_TOKENS_PATH: anthropic,
            CHAT_PATH: openai,
        }
        self.anthropic_models = AnthropicModelsAPI()
        self.openai_models = OpenAIModelsAPI()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path == PREFIX or path.startswith(PREFIX + "/"):
            await handle_control(self.state, method, path, receive, send)
            return
        route = path.rstrip("/")
        if route == MODELS_PATH or route.startswith(MODELS_PATH + "/"):
            await self._models(scope, receive, send, method)
            return
        api = self.routes.get(route)
        if api is None:
            await read_body(receive)
            await send_plain_json(send, 404, _not_found(scope, path))
            return
        if method != "POST":
            await read_body(receive)
            await send_plain_json(send, 405, _not_allowed(api.name, method))
            return
        await handle_upstream(api, self.state, scope, receive, send)

    async def _models(self, scope: Scope, receive: Receive, send: Send, method: str) -> None:
        api: ProviderAPI = (
            self.anthropic_models if _has_header(scope, b"anthropic-version") else self.openai_models
        )
        if method != "GET":
            await read_body(receive)
            await send_plain_json(send, 405, _not_allowed(api.name, method))
            return
        await handle_upstream(api, self.state, scope, receive, send)


def _has_header(scope: Scope, name: bytes) -> bool:
    return any(key.lower() == name for key, _ in scope.get("headers", []))


def _is_anthropic_client(scope: Scope) -> bool:
    names = {name.lower() for name, _ in scope.get("headers", [])}
    return b"x-api-key" in names or b"anthropic-version" in names


def _not_found(scope: Scope, path: str) -> dict[str, object]:
    if _is_anthropic_client(scope):
        return {
            "type": "error",
            "error": {"type": "not_found_error", "message": f"Not Found: {path}"},
        }
    return {
        "error": {
            "message": f"Invalid URL (POST {path})",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def _not_allowed(provider: str, method: str) -> dict[str, object]:
    message = f"Method {method} not allowed."
    if provider == "anthropic":
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_emulator_app(state: EmulatorState | None = None) -> ASGIApp:
    """Build the emulator ASGI app (state is in memory; run it in a single process)."""
    return EmulatorApp(state)
