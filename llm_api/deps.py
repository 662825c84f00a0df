"""The application's parts a handler uses, read from `app.state` (the lifespan puts them there).

Plain calls, not FastAPI dependencies: the hot endpoints (`routers.direct.DirectRoute`) take only the
request and call these, which costs an attribute lookup instead of a dependency-tree solve.
"""

from __future__ import annotations

from fastapi import Request

from llm_api.config import Settings
from llm_api.services.llm import ChatService
from llm_api.spend import SpendGuard


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def chat_service_of(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat_service
    return service


def spend_guard_of(request: Request) -> SpendGuard:
    guard: SpendGuard = request.app.state.spend_guard
    return guard
