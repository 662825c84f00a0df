"""Spend: token and budget reservations, prices, and the token estimator.

guard = SpendGuard.from_settings(settings, limiter=rate_limiter, spend_source=ledger.spend_since)
reservation = await guard.reserve(key_id=..., limits=guard.default_limits, model=...,
                                  input_tokens=estimate_chat_tokens(chat), max_output_tokens=...)
... call upstream ...
await guard.settle(reservation, input_tokens=..., output_tokens=..., estimated=False)  # or release()
"""

from llm_api.spend.estimate import estimate_chat_tokens, estimate_texts_tokens, estimate_tokens
from llm_api.spend.guard import SpendGuard
from llm_api.spend.periods import BudgetPeriod, period_window
from llm_api.spend.prices import Price, PriceTable, cost, worst_case_cost
from llm_api.spend.types import KeyLimits, Reservation, SpendSource, TokenWindow, UsageSnapshot

__all__ = [
    "BudgetPeriod",
    "KeyLimits",
    "Price",
    "PriceTable",
    "Reservation",
    "SpendGuard",
    "SpendSource",
    "TokenWindow",
    "UsageSnapshot",
    "cost",
    "estimate_chat_tokens",
    "estimate_texts_tokens",
    "estimate_tokens",
    "period_window",
    "worst_case_cost",
]
