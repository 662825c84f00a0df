"""Pure logic of the spend package: prices, the token estimator, periods, headers, limits parsing."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llm_api.chat_model import Chat, Image, Message, Text, Tool
from llm_api.chat_model import Usage as NeutralUsage
from llm_api.config import Settings
from llm_api.spend import PriceTable, cost, estimate_chat_tokens, estimate_tokens, worst_case_cost
from llm_api.spend.headers import duration
from llm_api.spend.periods import period_window
from llm_api.spend.prices import Price, package_terms
from llm_api.spend.types import KeyLimits, TokenWindow, parse_token_limit

ENGLISH = (
    "The quick brown fox jumps over the lazy dog. A gateway that reserves the worst case before a call, "
    "and reconciles it with the provider's usage afterwards, never lets concurrent requests run past a "
    "budget: each one sees the room the others already hold. Operators who pay the bill expect exactly "
    "that, and they expect the counters to survive a restart of the cache as well."
)


# --- prices ------------------------------------------------------------------------------------------


def test_overrides_come_first_exact_names_before_globs_then_the_package() -> None:
    table = PriceTable(
        '{"claude-opus-4-5": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2},'
        ' "private-*": {"input_usd_per_mtok": "0.5", "output_usd_per_mtok": 1,'
        ' "cache_read_usd_per_mtok": 0.05}}'
    )
    opus = table.price_for("claude-opus-4-5")
    assert opus is not None and opus.source == "MODEL_PRICES" and opus.input_usd_per_mtok == 1
    private = table.price_for("private-llm-7b")
    assert private is not None and private.cache_read_usd_per_mtok == Decimal("0.05")
    assert private.cache_write_usd_per_mtok == Decimal("0.5")  # defaults to the input price
    packaged = table.price_for("gpt-4o-mini")
    assert packaged is not None and packaged.source.startswith("genai-prices")
    assert table.price_for("no-such-model-anywhere") is None
    assert table.version.startswith("genai-prices-") and "+overrides-" in table.version
    assert "+overrides-" not in PriceTable().version


def test_costs_follow_the_price_and_the_worst_case_bounds_them() -> None:
    table = PriceTable()
    price = table.price_for("claude-opus-4-5")
    assert price is not None
    usage = NeutralUsage(input_tokens=1000, output_tokens=500, cache_read_tokens=100, cache_write_tokens=50)
    # $5 in, $25 out, $0.5 cache read, $6.25 cache write per MTok.
    assert cost(usage, price) == Decimal("0.0050") + Decimal("0.0125") + Decimal("0.00005") + Decimal(
        "0.0003125"
    )
    assert worst_case_cost(input_tokens=usage.prompt_tokens, output_tokens=500, price=price) >= cost(
        usage, price
    )
    flat = PriceTable('{"m": {"input_usd_per_mtok": 3, "output_usd_per_mtok": 15}}').price_for("m")
    assert flat is not None
    assert cost(NeutralUsage(1_000_000, 1_000_000), flat) == Decimal(18)


def _package_models() -> list[tuple[str, ModelPrice]]:
    now = datetime.now(UTC)
    return [
        (f"{provider.id}/{model.id}", model.get_prices(now))
        for provider in data_snapshot.get_snapshot().providers
        for model in provider.models
    ]


_USAGE_COUNTS = st.one_of(st.just(0), st.just(1), st.integers(0, 3_000_000))


@settings(max_examples=40, deadline=None)
@example(NeutralUsage(200_000, 10))  # on the usual tier start: the base rate still
@example(NeutralUsage(199_000, 10, cache_read_tokens=1_000, cache_write_tokens=1))  # above it, by the cache
@given(st.tuples(_USAGE_COUNTS, _USAGE_COUNTS, _USAGE_COUNTS, _USAGE_COUNTS).map(lambda t: NeutralUsage(*t)))
def test_the_cost_of_a_package_price_is_the_packages_own_to_the_last_digit(usage: NeutralUsage) -> None:
    """`cost` works the package's sum out itself (tiers included); it must be the Decimal the package's
    `calc_price` gives, for every entry it does so for."""
    worked_out = 0
    for name, package_price in _package_models():
        terms = package_terms(package_price)
        if terms is None:
            continue
        worked_out += 1
        price = Price(Decimal(1), Decimal(1), Decimal(1), Decimal(1), "test", package_price, terms)
        expected = package_price.calc_price(
            genai_prices.Usage(
                input_tokens=usage.prompt_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            )
        )["total_price"]
        got = cost(usage, price)
        assert (str(got), name) == (str(expected), name)
    assert worked_out > 1500  # most of the table, not a corner of it


def test_the_bench_and_vendor_models_are_costed_without_the_packages_calculation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The package's `calc_price` costs ~190 µs a call (a fifth of a request's CPU): the common models'
    prices, tiered or not, never reach it; a price `cost` cannot work out still does."""
    table = PriceTable()
    models = ("claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o", "gpt-4.1", "gpt-4o-mini")
    prices = {model: table.price_for(model) for model in models}
    expected = {model: cost(NeutralUsage(250_000, 900), price) for model, price in prices.items() if price}

    def refuse(*_: object, **__: object) -> object:
        raise AssertionError("the package's calc_price was called")

    monkeypatch.setattr(ModelPrice, "calc_price", refuse)
    assert len(expected) == len(models)
    for model, price in prices.items():
        assert price is not None and cost(NeutralUsage(250_000, 900), price) == expected[model]
    per_request = ModelPrice(input_mtok=Decimal(1), output_mtok=Decimal(2), requests_kilo=Decimal(3))
    assert package_terms(per_request) is None


@pytest.mark.parametrize(
    "value",
    [
        "[]",
        "{bad json",
        '{"m": {"input_usd_per_mtok": 1}}',
        '{"m": {"input_usd_per_mtok": -1, "output_usd_per_mtok": 1}}',
    ],
)
def test_invalid_model_prices_stop_start_up(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("API_KEYS", "k")
    monkeypatch.setenv("MODEL_PRICES", value)
    with pytest.raises(ValueError, match="MODEL_PRICES"):
        Settings()


def test_token_limit_setting() -> None:
    assert parse_token_limit("100000/minute") == (TokenWindow(100000, 60),)
    assert parse_token_limit("") == ()
    with pytest.raises(ValueError, match="TOKEN_LIMIT"):
        parse_token_limit("lots")
    assert KeyLimits.of(tpm=500).tpm == 500
    with pytest.raises(ValueError, match="budget_period"):
        KeyLimits.of(budget_usd=1, budget_period="fortnight")


# --- the estimator -----------------------------------------------------------------------------------


def test_english_is_over_counted_against_both_vendors_rules_of_thumb() -> None:
    estimate = estimate_tokens(ENGLISH)
    # OpenAI: ~4 chars or 0.75 words per token; Anthropic: ~3.5 chars per token.
    assert estimate >= math.ceil(len(ENGLISH) / 3.5)
    assert estimate >= math.ceil(len(ENGLISH.split()) / 0.75)
    assert estimate <= len(ENGLISH) / 2.5  # an over-count, not a wild one


@given(st.text(max_size=400))
def test_the_estimate_never_falls_below_characters_over_four_or_one_per_non_ascii(text: str) -> None:
    estimate = estimate_tokens(text)
    assert estimate >= math.ceil(len(text) / 4)
    assert estimate >= sum(1 for ch in text if ord(ch) > 127)


def test_a_neutral_chat_counts_system_messages_tools_and_images() -> None:
    plain = Chat(model="m", messages=(Message("user", (Text("hello there"),)),))
    rich = Chat(
        model="m",
        system=(Text("You are terse."),),
        messages=(Message("user", (Text("hello there"), Image(media_type="image/png", data="AAAA"))),),
        tools=(Tool(name="lookup", description="Find a thing", parameters={"type": "object"}),),
    )
    assert estimate_chat_tokens(plain) >= estimate_tokens("hello there") + 4
    assert estimate_chat_tokens(rich) >= estimate_chat_tokens(plain) + 1600 + estimate_tokens(
        "You are terse."
    )


# --- periods and headers -----------------------------------------------------------------------------


def test_budget_periods_are_calendar_aligned_in_utc() -> None:
    now = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # a Thursday
    assert period_window("day", now).start == datetime(2026, 12, 31, tzinfo=UTC)
    assert period_window("week", now).start == datetime(2026, 12, 28, tzinfo=UTC)
    month = period_window("month", now)
    assert (month.start, month.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert period_window("total", now).end is None and period_window("total", now).ttl_s(now) is None
    assert period_window("day", now).ident != period_window("day", datetime(2027, 1, 1, tzinfo=UTC)).ident


def test_reset_durations_use_openais_notation() -> None:
    assert [duration(ms) for ms in (20, 1000, 12_400, 60_000, 3_723_000)] == [
        "20ms",
        "1s",
        "13s",
        "1m0s",
        "1h2m3s",
    ]
