"""Model prices: MODEL_PRICES overrides first, then the `genai-prices` package's table (pinned).

MODEL_PRICES is a JSON object from a model name or glob to
``{"input_usd_per_mtok": 3, "output_usd_per_mtok": 15, "cache_read_usd_per_mtok"?: 0.3,
"cache_write_usd_per_mtok"?: 3.75}``; an exact name wins over a glob, then globs in the order given.
The package is read offline (its bundled snapshot; its auto-update is never started), so the price of a
request depends only on the pinned package version and the overrides: `PriceTable.version` names both,
and the ledger stores it with each cost.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice, TieredPrices

from llm_api.chat_model import Usage

MTOK = Decimal(1_000_000)
_FIELDS = ("input_usd_per_mtok", "output_usd_per_mtok", "cache_read_usd_per_mtok", "cache_write_usd_per_mtok")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. Cache prices default to the input price when the source gives none.

    `package_price` is the package's own entry (with its tiers), used for the exact cost; the flat fields
    are the highest tier, used for the worst case. `package_terms` is that entry's prices in the package's
    order when `cost` can work its sum out itself (`package_terms()`).
    """

    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal
    cache_read_usd_per_mtok: Decimal
    cache_write_usd_per_mtok: Decimal
    source: str
    package_price: ModelPrice | None = None
    package_terms: tuple[PackageTerm, ...] | None = None


def _decimal(value: object, *, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"MODEL_PRICES: {where} must be a number")
    number = Decimal(str(value))
    if not number.is_finite() or number < 0:
        raise ValueError(f"MODEL_PRICES: {where} must be a non-negative number")
    return number


def parse_overrides(text: str | None) -> dict[str, Price]:
    """MODEL_PRICES as {pattern: Price}; ValueError naming the entry on a bad value."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise ValueError("MODEL_PRICES must be a JSON object") from None
    if not isinstance(raw, dict):
        raise ValueError("MODEL_PRICES must be a JSON object")
    table: dict[str, Price] = {}
    for pattern, entry in raw.items():
        if not isinstance(entry, dict):
            raise ValueError(f"MODEL_PRICES[{pattern!r}] must be an object")
        unknown = sorted(set(entry) - set(_FIELDS))
        missing = [name for name in _FIELDS[:2] if name not in entry]
        if unknown or missing:
            raise ValueError(
                f"MODEL_PRICES[{pattern!r}]: needs input_usd_per_mtok and output_usd_per_mtok "
                f"(optional: cache_read_usd_per_mtok, cache_write_usd_per_mtok); got {sorted(entry)}"
            )
        values = {name: _decimal(entry[name], where=f"{pattern!r}.{name}") for name in entry}
        table[pattern] = Price(
            input_usd_per_mtok=values["input_usd_per_mtok"],
            output_usd_per_mtok=values["output_usd_per_mtok"],
            cache_read_usd_per_mtok=values.get("cache_read_usd_per_mtok", values["input_usd_per_mtok"]),
            cache_write_usd_per_mtok=values.get("cache_write_usd_per_mtok", values["input_usd_per_mtok"]),
            source="MODEL_PRICES",
        )
    return table


def _highest(price: Decimal | TieredPrices | None) -> Decimal | None:
    if price is None:
        return None
    if isinstance(price, TieredPrices):
        return max([price.base, *(tier.price for tier in price.tiers)])
    return price


def _from_package(model: str) -> Price | None:
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, None, None)
    except LookupError:
        return None
    prices = info.get_prices(datetime.now(UTC))
    input_price = _highest(prices.input_mtok)
    output_price = _highest(prices.output_mtok)
    if input_price is None or output_price is None:
        return None  # not priced per token (audio, images): unknown to us
    return Price(
        input_usd_per_mtok=input_price,
        output_usd_per_mtok=output_price,
        cache_read_usd_per_mtok=_highest(prices.cache_read_mtok) or input_price,
        cache_write_usd_per_mtok=_highest(prices.cache_write_mtok) or input_price,
        source=f"genai-prices {genai_prices.__version__}",
        package_price=prices,
        package_terms=package_terms(prices),
    )


# The package's price keys that `cost` works out itself: the unit's divisor and what a neutral Usage counts
# of it. The Usage has no 1-hour cache writes and no tool searches: those count 0, as in the package.
_UNITS: dict[str, tuple[int, str | None]] = {
    "input_mtok": (1_000_000, "input"),
    "output_mtok": (1_000_000, "output"),
    "cache_read_mtok": (1_000_000, "cache_read"),
    "cache_write_mtok": (1_000_000, "cache_write"),
    "cache_write_1h_mtok": (1_000_000, None),
    "web_searches_kcount": (1_000, None),
    "storage_searches_kcount": (1_000, None),
}

PackageTerm = tuple[str | None, Decimal | TieredPrices, int]


def package_terms(prices: ModelPrice) -> tuple[PackageTerm, ...] | None:
    """The entry's prices as (what they count, price, divisor) in the package's order, or None when one
    is of a kind `cost` leaves to the package (per request, audio, a 1-hour cache write alone)."""
    entries = [
        (key, value) for key, value in vars(prices).items() if not key.startswith("_") and value is not None
    ]
    keys = {key for key, _ in entries}
    if not keys <= _UNITS.keys() or "input_mtok" not in keys:
        return None
    if "cache_write_1h_mtok" in keys and "cache_write_mtok" not in keys:
        return None
    if not all(type(value) is Decimal or isinstance(value, TieredPrices) for _, value in entries):
        return None
    return tuple((_UNITS[key][1], value, _UNITS[key][0]) for key, value in entries)


def load_package_table() -> None:
    """Load genai-prices' table (kept by the package for the process: once in the gunicorn master, the
    workers share it)."""
    data_snapshot.get_snapshot().find_provider_model("gpt-4o", None, None, None)


class PriceTable:
    """`price_for(model)` from the overrides, then the package; cached per model name."""

    def __init__(self, overrides: str | None = None) -> None:
        self._overrides = parse_overrides(overrides)
        self._cache: dict[str, Price | None] = {}
        digest = hashlib.sha256((overrides or "").encode()).hexdigest()[:12] if overrides else None
        self.version = f"genai-prices-{genai_prices.__version__}" + (f"+overrides-{digest}" if digest else "")

    def preload(self) -> None:
        """Load the package's table now (a second or two of CPU), not during the first request."""
        load_package_table()

    def price_for(self, model: str) -> Price | None:
        """The model's price, or None when neither source knows it."""
        if model not in self._cache:
            self._cache[model] = self._lookup(model)
        return self._cache[model]

    def _lookup(self, model: str) -> Price | None:
        if model in self._overrides:
            return self._overrides[model]
        for pattern, price in self._overrides.items():
            if fnmatch.fnmatchcase(model, pattern):
                return price
        return _from_package(model)


def _package_cost(usage: Usage, terms: tuple[PackageTerm, ...]) -> Decimal | None:
    """The package's `ModelPrice.calc_price` total, term by term in its order (the same Decimal), without
    its cost (~190 µs a call: its unit registry and usage decomposition run each time). The uncached input
    is what the priced cache kinds leave of the prompt; a tier applies above its start in prompt tokens.
    None when the counts do not add up (the package raises)."""
    kinds = {kind for kind, _, _ in terms}
    prompt = usage.prompt_tokens
    uncached = prompt
    if "cache_read" in kinds:
        uncached -= usage.cache_read_tokens
    if "cache_write" in kinds:
        uncached -= usage.cache_write_tokens
    if uncached < 0 or min(usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens) < 0:
        return None
    counts = {
        "input": uncached,
        "output": usage.output_tokens,
        "cache_read": usage.cache_read_tokens,
        "cache_write": usage.cache_write_tokens,
        None: 0,
    }
    total = Decimal(0)
    for kind, price, per in terms:
        if isinstance(price, TieredPrices):
            rate = price.base
            for tier in reversed(price.tiers):
                if prompt > tier.start:
                    rate = tier.price
                    break
        else:
            rate = price
        total += rate * Decimal(counts[kind]) / per
    return total


def cost(usage: Usage, price: Price) -> Decimal:
    """What `usage` costs at `price`, in USD (the package's tiers apply to its own prices)."""
    if price.package_terms is not None:
        worked_out = _package_cost(usage, price.package_terms)
        if worked_out is not None:
            return worked_out
    if price.package_price is not None:
        calculated: Any = price.package_price.calc_price(
            genai_prices.Usage(
                input_tokens=usage.prompt_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            )
        )
        return Decimal(calculated["total_price"])
    return (
        usage.input_tokens * price.input_usd_per_mtok
        + usage.output_tokens * price.output_usd_per_mtok
        + usage.cache_read_tokens * price.cache_read_usd_per_mtok
        + usage.cache_write_tokens * price.cache_write_usd_per_mtok
    ) / MTOK


def worst_case_cost(*, input_tokens: int, output_tokens: int, price: Price) -> Decimal:
    """The most `input_tokens` in and `output_tokens` out can cost: every input token at the dearest input
    rate (a cache write can cost more than plain input), output at the highest tier."""
    dearest_input = max(price.input_usd_per_mtok, price.cache_write_usd_per_mtok)
    return (input_tokens * dearest_input + output_tokens * price.output_usd_per_mtok) / MTOK


NANO = Decimal("1e-9")


def to_nano_usd(amount: Decimal, *, round_up: bool = True) -> int:
    """USD as whole nano-dollars (what Redis counts): rounded up for spend, down for a budget."""
    return int((amount / NANO).to_integral_value(rounding=ROUND_CEILING if round_up else "ROUND_FLOOR"))


def dearest_worst_case(
    prices: Iterable[Price | None], *, input_tokens: int, output_tokens: int
) -> tuple[Price | None, Decimal | None]:
    """Of several models that may serve a request, the price with the highest worst case, and that
    worst case (None, None: none is priced)."""
    dearest: tuple[Price | None, Decimal | None] = (None, None)
    for price in prices:
        if price is None:
            continue
        worst = worst_case_cost(input_tokens=input_tokens, output_tokens=output_tokens, price=price)
        if dearest[1] is None or worst > dearest[1]:
            dearest = (price, worst)
    return dearest
