"""Mutation pass over the Gamma edge (`venue/gamma.py`, `venue/gamma_terms.py`, `venue/universe.py`):
the gaps the existing tests left open, and the bugs the pass found.

The Gamma client is driven through a fake `JsonHttp` (no sockets): it records every request and
answers from a handler, so paging, stop rules and the legacy -> keyset fallback are checked by
exactly which requests were sent."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmm_widgets.domain import Market
from pmm_widgets.venue.gamma import GammaClient, MarketParseError, capped_raw, parse_market, token_ids
from pmm_widgets.venue.http import VenueHTTPError

D = Decimal
YES = "54533043819946592547517511176940999955633860128497669742211153063842200957669"
NO = "87854174148074652060467921081181402357467303721471806610111179101805869578687"
CID = "0x0f49" + "0" * 60


def obj(**over: Any) -> dict[str, Any]:
    """A real-shaped, tradable Gamma market object; `field=...` leaves a field out."""
    base: dict[str, Any] = {
        "id": "559652", "question": "Will Gavin Newsom win?", "conditionId": CID, "slug": "newsom",
        "endDate": "2028-11-07T00:00:00Z", "liquidity": "230438.22824", "liquidityNum": 230438.22824,
        "outcomes": "[\"Yes\", \"No\"]", "clobTokenIds": json.dumps([YES, NO]), "active": True, "closed": False,
        "enableOrderBook": True, "acceptingOrders": True, "orderPriceMinTickSize": 0.001, "orderMinSize": 5,
        "negRisk": True, "volume24hr": 9066.5, "bestBid": 0.232, "bestAsk": 0.233}
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


def row(i: int, *, tradable: bool = True) -> dict[str, Any]:
    """Market number `i` of a fake venue list (distinct condition and token ids)."""
    return obj(conditionId=f"0x{i:064x}", clobTokenIds=json.dumps([str(2 * i + 1), str(2 * i + 2)]),
               liquidityNum=1000.0 - i, acceptingOrders=tradable)


# --- parse_market: each field read from its own key, its default when absent ---------------------


def test_every_field_is_read_from_its_key() -> None:
    m = parse_market(obj(question="Q?", slug="s-1", volume24hr="12.5", bestBid="0.4", bestAsk=0.45,
                         endDate="2028-11-07T00:00:00Z", negRisk=False))
    assert (m.question, m.slug, m.volume_24h, m.best_bid, m.best_ask) == ("Q?", "s-1", 12.5, 0.4, 0.45)
    assert m.end_date == "2028-11-07T00:00:00Z" and m.neg_risk is False and m.condition_id == CID


def test_defaults_of_absent_fields() -> None:
    m = parse_market({"conditionId": " 0xabc "})
    assert m.condition_id == "0xabc"
    assert (m.question, m.slug, m.gamma_id, m.yes_token_id, m.no_token_id) == ("", "", "", "", "")
    assert m.tick_size == 0 and m.min_order_size == D(5)  # no tick: untradable; the venue's usual minimum
    assert m.neg_risk is False and m.active is True and m.closed is False
    assert m.accepting_orders is False and m.enable_order_book is False  # not vouched for: not quoted
    assert m.liquidity_num == 0.0 and m.volume_24h == 0.0
    assert m.best_bid is None and m.best_ask is None and m.end_date is None
    assert not m.tradable


@pytest.mark.parametrize("over", [{"endDate": ""}, {"endDate": None}, {"endDate": ...}])
def test_no_end_date_is_none(over: dict[str, Any]) -> None:
    assert parse_market(obj(**over)).end_date is None


def test_long_texts_are_cut() -> None:
    m = parse_market(obj(question="q" * 600, slug="s" * 600, endDate="2028-11-07T00:00:00Z" + "x" * 30,
                         id="9" * 150))
    assert m.question == "q" * 500 and m.slug == "s" * 500 and m.gamma_id == "9" * 100
    assert m.end_date == ("2028-11-07T00:00:00Z" + "x" * 30)[:40]


def test_empty_text_numbers_take_their_defaults() -> None:
    m = parse_market(obj(liquidityNum="", liquidity="", volume24hr="", bestBid="", bestAsk="",
                         orderMinSize="", orderPriceMinTickSize=""))
    assert m.liquidity_num == 0.0 and m.volume_24h == 0.0 and m.best_bid is None and m.best_ask is None
    assert m.min_order_size == D(5) and m.tick_size == 0 and not m.tradable
    assert parse_market(obj(liquidityNum="")).liquidity_num == 230438.22824  # from the text `liquidity`
    assert parse_market(obj(liquidityNum=..., liquidity=...)).liquidity_num == 0.0


@pytest.mark.parametrize("field", ["liquidityNum", "volume24hr", "bestBid", "bestAsk"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "NaN", "-Infinity"])
def test_non_finite_numbers_are_refused(field: str, bad: Any) -> None:
    with pytest.raises(MarketParseError, match="finite"):
        parse_market(obj(**{field: bad}))


@pytest.mark.parametrize("field", ["orderPriceMinTickSize", "orderMinSize"])
@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "-0.01", -5])
def test_non_finite_or_negative_decimals_are_refused(field: str, bad: Any) -> None:
    with pytest.raises(MarketParseError, match="non-negative decimal"):
        parse_market(obj(**{field: bad}))


def test_a_zero_tick_is_untradable_not_unparseable() -> None:
    m = parse_market(obj(orderPriceMinTickSize="0"))
    assert m.tick_size == 0 and not m.tradable


@pytest.mark.parametrize("tick", ["0.1", "0.01", "0.005", "0.0025", "0.001", "0.0001", 0.01, "0.010"])
def test_venue_ticks_parse(tick: Any) -> None:
    m = parse_market(obj(orderPriceMinTickSize=tick))
    assert m.tick_size == D(str(tick)) and m.tradable


@pytest.mark.parametrize("tick", ["0.02", "0.05", "1", "0.00001", 0.002])
def test_ticks_the_venue_does_not_use_are_refused(tick: Any) -> None:
    with pytest.raises(MarketParseError, match="not one of the venue's"):
        parse_market(obj(orderPriceMinTickSize=tick))


@pytest.mark.parametrize("size, want", [("0.5", D("0.5")), (1, D(1)), (15, D(15)), ("100000", D(100000))])
def test_min_order_sizes_inside_the_bounds(size: Any, want: Decimal) -> None:
    assert parse_market(obj(orderMinSize=size)).min_order_size == want


@pytest.mark.parametrize("size", [0, "0", "100000.01", 100001])
def test_min_order_sizes_outside_the_bounds_are_refused(size: Any) -> None:
    with pytest.raises(MarketParseError, match="min order size"):
        parse_market(obj(orderMinSize=size))


@pytest.mark.parametrize("v, want", [(1, True), (0, False), (2, True), (0.0, False), (1.0, True), (True, True),
                                     (False, False), (" TRUE ", True), ("1", True), ("yes", True), ("no", False),
                                     ("0", False), ("", False), ("False", False)])
def test_booleans_of_every_wire_type(v: Any, want: bool) -> None:
    m = parse_market(obj(negRisk=v, acceptingOrders=v))
    assert m.neg_risk is want and m.accepting_orders is want


@pytest.mark.parametrize("v", [[1], {"a": 1}, "maybe", "2"])
def test_other_booleans_are_refused(v: Any) -> None:
    with pytest.raises(MarketParseError, match="not a boolean"):
        parse_market(obj(negRisk=v))


# --- ids ------------------------------------------------------------------------------------------


def test_condition_and_token_id_lengths() -> None:
    assert parse_market(obj(conditionId="0x" + "a" * 98)).condition_id == "0x" + "a" * 98  # 100: kept
    with pytest.raises(MarketParseError, match="conditionId of 101"):
        parse_market(obj(conditionId="0x" + "a" * 99))
    long_ok = "1" * 100
    assert parse_market(obj(clobTokenIds=json.dumps([long_ok, NO]))).yes_token_id == long_ok
    for ids in ([long_ok + "1", NO], [YES, long_ok + "1"]):
        with pytest.raises(MarketParseError, match="token id too long"):
            parse_market(obj(clobTokenIds=json.dumps(ids)))


@pytest.mark.parametrize("ids", ["", None])
def test_empty_token_ids_are_untradable(ids: Any) -> None:
    m = parse_market(obj(clobTokenIds=ids))
    assert m.token_ids == ("", "") and not m.tradable


@pytest.mark.parametrize("ids", ['{"a": 1}', {"a": 1}, "7", 7])
def test_token_ids_that_are_not_a_list_are_refused(ids: Any) -> None:
    with pytest.raises(MarketParseError, match="clobTokenIds is not a list"):
        parse_market(obj(clobTokenIds=ids))


def test_token_ids_as_numbers_and_padded_text() -> None:
    assert token_ids({"clobTokenIds": [123, " 456 "]}) == ("123", "456")
    assert token_ids({"version": " V2 ", "positionIds": "[\"7\", \"8\"]", "clobTokenIds": "[\"1\", \"2\"]"}) == ("7", "8")
    assert token_ids({"version": "v1", "positionIds": "[\"7\", \"8\"]", "clobTokenIds": "[\"1\", \"2\"]"}) == ("1", "2")
    with pytest.raises(MarketParseError, match="positionIds has 1 ids"):
        token_ids({"version": "v2", "positionIds": ["7"]})


# --- capped_raw -----------------------------------------------------------------------------------


def test_capped_raw_bounds() -> None:
    loop: list[Any] = []
    loop.append(loop)  # json.dumps refuses it: treated as too long
    raw = capped_raw({"s": "x" * 4000, "t": "x" * 4001, "k" * 600: 1, "l": ["y" * 3990], "m": ["y" * 4000],
                      "d": {"a": "z" * 3990}, "e": {"a": "z" * 4000}, "n": 7, "f": 0.5, "z": None, "loop": loop})
    assert raw["s"] == "x" * 4000 and raw["t"] == "<cut: 4001 characters>"
    assert raw["k" * 500] == 1 and "k" * 600 not in raw
    assert raw["l"] == ["y" * 3990] and raw["m"] == "<cut: 4004 characters of JSON>"
    assert raw["d"] == {"a": "z" * 3990} and raw["e"] == "<cut: 4009 characters of JSON>"
    assert (raw["n"], raw["f"], raw["z"]) == (7, 0.5, None)
    assert raw["loop"] == "<cut: 4001 characters of JSON>"
    wide = capped_raw({f"k{i}": i for i in range(250)})
    assert list(wide) == [f"k{i}" for i in range(200)]
    at_cap = ["a" * 3996]  # json.dumps: 4000 characters, kept
    assert len(json.dumps(at_cap)) == 4000 and capped_raw({"x": at_cap})["x"] == at_cap


# --- GammaClient: fallback, paging, stop rules ----------------------------------------------------


class FakeHttp:
    """`JsonHttp`'s `get` / `aclose`, answering from `handler(path, params)`; records every call."""

    def __init__(self, handler: Callable[[str, dict[str, Any]], Any]) -> None:
        self.handler = handler
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.closed = False

    async def get(self, path: str, params: dict[str, Any] | None = None, *, retry: bool = True) -> Any:
        p = dict(params or {})
        self.calls.append((path, p))
        return self.handler(path, p)

    async def aclose(self) -> None:
        self.closed = True

    def paths(self) -> list[str]:
        return [c[0] for c in self.calls]


def client(handler: Callable[[str, dict[str, Any]], Any]) -> tuple[GammaClient, FakeHttp]:
    http = FakeHttp(handler)
    return GammaClient("http://gamma.invalid", http=http), http  # type: ignore[arg-type]


def refusing(status: int | None, rows: list[dict[str, Any]]) -> Callable[[str, dict[str, Any]], Any]:
    def handler(path: str, params: dict[str, Any]) -> Any:
        if path == "/markets":
            raise VenueHTTPError("GET", path, status, "refused")
        return {"markets": rows, "next_cursor": None}
    return handler


@pytest.mark.parametrize("status", [404, 405, 410, 422])
async def test_a_refused_legacy_endpoint_switches_to_keyset_for_good(status: int, caplog: pytest.LogCaptureFixture) -> None:
    g, http = client(refusing(status, [row(1), row(2)]))
    with caplog.at_level(logging.WARNING):
        got = await g.fetch_markets(2)
    assert [m.condition_id for m in got] == [row(1)["conditionId"], row(2)["conditionId"]]
    assert http.paths() == ["/markets", "/markets/keyset"] and g.legacy_off and g.used_keyset
    assert "using /markets/keyset from now on" in caplog.text
    await g.fetch_markets(2)
    assert http.paths() == ["/markets", "/markets/keyset", "/markets/keyset"]  # legacy never asked again


@pytest.mark.parametrize("status", [None, 400, 401, 403, 406, 409, 421, 423, 429, 500, 503])
async def test_other_legacy_failures_are_raised(status: int | None) -> None:
    g, http = client(refusing(status, [row(1)]))
    with pytest.raises(VenueHTTPError) as ei:
        await g.fetch_markets(2)
    assert ei.value.status == status and http.paths() == ["/markets"]
    assert not g.legacy_off and not g.used_keyset


async def test_a_legacy_answer_that_is_not_a_list_switches_to_keyset(caplog: pytest.LogCaptureFixture) -> None:
    def handler(path: str, params: dict[str, Any]) -> Any:
        return {"markets": [row(1)], "next_cursor": None}  # both endpoints answer the keyset shape
    g, http = client(handler)
    with caplog.at_level(logging.WARNING):
        got = await g.fetch_markets(1)
    assert len(got) == 1 and http.paths() == ["/markets", "/markets/keyset"] and g.legacy_off and g.used_keyset
    assert "did not answer a list" in caplog.text
    await g.fetch_markets(1)
    assert http.paths()[-1] == "/markets/keyset" and http.paths().count("/markets") == 1


@pytest.mark.parametrize("n", [0, -1])
async def test_no_markets_asked_no_request(n: int) -> None:
    g, http = client(lambda path, params: [row(1)])
    assert await g.fetch_markets(n) == [] and http.calls == []


async def test_legacy_paging_offsets_filters_and_stop_rules() -> None:
    pages = {0: [row(1, tradable=False), row(2)], 2: [row(3), row(4, tradable=False)], 4: [row(5)]}
    g, http = client(lambda path, params: pages.get(params["offset"], []))
    got = await g.fetch_markets(1)  # one tradable market on the first page: one request
    assert len(got) == 2 and [c[1]["offset"] for c in http.calls] == [0]
    assert http.calls[0][1] == {"limit": 1, "offset": 0, "active": "true", "closed": "false",
                                "order": "liquidityNum", "ascending": "false"}
    http.calls.clear()
    got = await g.fetch_markets(2)  # exactly n tradable after the second page: stop there
    assert len(got) == 4 and [c[1]["offset"] for c in http.calls] == [0, 2]
    http.calls.clear()
    got = await g.fetch_markets(9)  # the list ends (an empty page) before n tradable markets
    assert len(got) == 5 and [c[1]["offset"] for c in http.calls] == [0, 2, 4, 5]
    assert not g.used_keyset


async def test_keyset_paging_cursor_and_stop_rules() -> None:
    pages: dict[str | None, dict[str, Any]] = {
        None: {"markets": [row(1, tradable=False), row(2)], "next_cursor": "c2"},
        "c2": {"markets": [row(3), row(4, tradable=False)], "next_cursor": "c3"},
        "c3": {"markets": [row(5)], "next_cursor": ""},
        "c9": {"markets": [], "next_cursor": "c9"},
    }
    g, http = client(lambda path, params: pages[params.get("after_cursor")])
    g.legacy_off = True
    got = await g.fetch_markets(1)
    assert len(got) == 2 and len(http.calls) == 1 and "after_cursor" not in http.calls[0][1]
    assert http.calls[0][1] == {"limit": 1, "active": "true", "closed": "false", "order": "liquidityNum",
                                "ascending": "false"}
    http.calls.clear()
    got = await g.fetch_markets(2)  # exactly n tradable after the second page
    assert len(got) == 4 and [c[1].get("after_cursor") for c in http.calls] == [None, "c2"]
    http.calls.clear()
    got = await g.fetch_markets(9)  # no next cursor: the end
    assert len(got) == 5 and [c[1].get("after_cursor") for c in http.calls] == [None, "c2", "c3"]
    # an empty page ends the list even when it names a next cursor
    pages["c3"] = {"markets": [], "next_cursor": "c9"}
    http.calls.clear()
    assert len(await g.fetch_markets(9)) == 4 and len(http.calls) == 3


@pytest.mark.parametrize("body", [[row(1)], {"markets": {"a": 1}}, {"next_cursor": "x"}, None, "markets"])
async def test_a_keyset_body_without_a_markets_list_is_an_error(body: Any) -> None:
    g, http = client(lambda path, params: body)
    g.legacy_off = True
    with pytest.raises(VenueHTTPError, match="no markets list") as ei:
        await g.fetch_markets(1)
    assert ei.value.status == 200 and ei.value.method == "GET" and ei.value.path == "/markets/keyset"


@pytest.mark.parametrize("legacy", [True, False])
async def test_paging_is_bounded(legacy: bool) -> None:
    def handler(path: str, params: dict[str, Any]) -> Any:
        page = [row(len(http.calls), tradable=False)]  # never a tradable market, never the end
        return page if path == "/markets" else {"markets": page, "next_cursor": "more"}
    g, http = client(handler)
    g.legacy_off = not legacy
    assert len(await g.fetch_markets(5)) == 50 and len(http.calls) == 50


def test_skip_reasons_keep_the_last_20() -> None:
    g, _ = client(lambda path, params: [])
    g._parse_page([obj(conditionId=f"bad{i}", clobTokenIds="[") for i in range(25)])
    assert g.skipped == 25 and len(g.skip_reasons) == 20
    assert g.skip_reasons[0].startswith("bad5") and g.skip_reasons[-1].startswith("bad24")


async def test_client_defaults_and_close() -> None:
    g = GammaClient("http://gamma.invalid")
    assert g.http.timeout == 10.0 and g.http.retries == 4
    await g.aclose()
    f, http = client(lambda path, params: [])
    await f.aclose()
    assert http.closed


def _mk(cid: str, liq: float, **kw: Any) -> Market:
    kw.setdefault("question", f"Q {cid}")
    return Market(condition_id=cid, yes_token_id="1" + cid, no_token_id="2" + cid, tick_size=D("0.01"),
                  min_order_size=D(5), liquidity_num=liq, **kw)


# --- universe -------------------------------------------------------------------------------------


def _rewarded(cid: str, liq: float, rate: float, bid: float | None = 0.45, ask: float | None = 0.47) -> Market:
    from pmm_widgets.venue.gamma_terms import decode_terms

    terms = decode_terms({"rewardsMinSize": 20, "rewardsMaxSpread": 3, "clobRewards": [{"rewardsDailyRate": rate}]})
    return Market(cid, f"Q {cid}", "1" + cid, "2" + cid, D("0.01"), D(5), liquidity_num=liq, best_bid=bid,
                  best_ask=ask, terms=terms)


def test_reward_density_formula() -> None:
    from pmm_widgets.venue.universe import reward_density

    assert reward_density(_rewarded("a", 0.0, 10)) == pytest.approx(10 / 100)  # the pool over (depth + $100)
    assert reward_density(_rewarded("a", 400.0, 10)) == pytest.approx(10 / 500)
    assert reward_density(_rewarded("a", -50.0, 10)) == pytest.approx(10 / 100)  # negative depth counts as 0
    assert reward_density(_rewarded("a", 0.0, 10, None, None)) == pytest.approx(0.1)  # no touch: mid 0.5
    assert reward_density(_rewarded("a", 0.0, 10, None, 0.02)) == pytest.approx(0.1)  # one side only: mid 0.5
    assert reward_density(_rewarded("a", 0.0, 10, 0.98, None)) == pytest.approx(0.1)
    assert reward_density(_rewarded("a", 0.0, 10, 0.12, 0.14)) == pytest.approx(0.1)  # mid 0.13: inside
    assert reward_density(_rewarded("a", 0.0, 10, 0.1, 0.1)) == pytest.approx(0.1)  # the bounds are inside
    assert reward_density(_rewarded("a", 0.0, 10, 0.9, 0.9)) == pytest.approx(0.1)
    assert reward_density(_rewarded("a", 0.0, 10, 0.08, 0.1)) == pytest.approx(0.1 / 3)  # mid 0.09: a third
    assert reward_density(_rewarded("a", 0.0, 10, 0.9, 0.92)) == pytest.approx(0.1 / 3)


def test_select_universe_keeps_the_first_of_a_condition_and_is_stable() -> None:
    from pmm_widgets.venue.universe import select_universe

    first = _mk("a", 10, question="first")
    ms = [first, _mk("b", 10), _mk("a", 99, question="second"), _mk("c", 10), _mk("d", 10, closed=True)]
    got = select_universe(ms, 10)
    assert [m.condition_id for m in got] == ["a", "b", "c"] and got[0] is first  # ties keep the venue's order
    assert select_universe(ms, 0) == [] and select_universe([], 5) == []


async def test_load_universe_asks_for_a_wider_pool_when_ranking_by_rewards() -> None:
    from pmm_widgets.venue.universe import load_universe

    class Gamma:
        asked: list[int] = []

        async def fetch_markets(self, n: int) -> list[Market]:
            self.asked.append(n)
            return [_mk("b", 1), _mk("a", 2)]

    g = Gamma()
    for size, rank in ((50, "liquidity"), (10, "rewards"), (50, "rewards"), (200, "rewards"), (1, "liquidity")):
        got = await load_universe(g, size, rank)  # type: ignore[arg-type]
        assert [m.condition_id for m in got] == ["a", "b"][:size]
    assert g.asked == [50, 100, 200, 500, 1]


def test_format_universe_cuts_long_questions_only() -> None:
    from pmm_widgets.venue.universe import format_universe

    text = format_universe([_mk("a", 1, question="abcde"), _mk("b", 1, question="abcdef")], question_width=5)
    lines = text.splitlines()
    assert lines[1] == "-" * len(lines[0]) and lines[2].split()[1] == "abcde" and lines[3].split()[1] == "abcd…"
    assert format_universe([]).splitlines()[-1] == "0 markets"


def test_format_universe_default_question_width() -> None:
    from pmm_widgets.venue.universe import format_universe

    lines = format_universe([_mk("a", 1, question="q" * 60), _mk("b", 1, question="r" * 48)]).splitlines()
    assert lines[2].split()[1] == "q" * 47 + "…" and lines[3].split()[1] == "r" * 48


# --- bugs found by the pass -----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["liquidityNum", "liquidity", "volume24hr", "bestBid", "bestAsk"])
def test_an_integer_too_big_for_a_float_is_refused_not_raised(field: str) -> None:
    """JSON integers have no size limit: `{"liquidityNum": 1000…0}` (400 digits) decodes to an int
    that `float()` cannot hold. It raised OverflowError, which is no MarketParseError: past
    `_parse_page`, out of `fetch_markets`, and the whole universe load failed on one junk row."""
    big = json.loads("1" + "0" * 400)
    assert isinstance(big, int)
    over = {field: big, "liquidityNum": ...} if field == "liquidity" else {field: big}
    with pytest.raises(MarketParseError, match="finite"):
        parse_market(obj(**over))


async def test_one_row_with_a_huge_number_is_skipped_and_the_load_goes_on() -> None:
    body = json.loads(json.dumps([row(1), row(2), row(3)]).replace("998.0", "1" + "0" * 400))  # row 2's liquidityNum
    assert body[1]["liquidityNum"] == 10**400
    g, _ = client(lambda path, params: body if params.get("offset") == 0 else [])
    got = await g.fetch_markets(5)
    assert [m.condition_id for m in got] == [row(1)["conditionId"], row(3)["conditionId"]]
    assert g.skipped == 1 and "finite" in g.skip_reasons[0]


@pytest.mark.parametrize("v", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_boolean_is_refused(v: float) -> None:
    """`NaN` is valid JSON to Python's decoder; `NaN != 0` made `negRisk: NaN` (or
    `acceptingOrders: NaN`) read as true."""
    for field in ("negRisk", "acceptingOrders", "enableOrderBook", "closed", "active"):
        with pytest.raises(MarketParseError, match="not a boolean"):
            parse_market(obj(**{field: v}))


@pytest.mark.parametrize("bad", ["١٢٣", "²", "12³", "١"])
def test_token_ids_must_be_ascii_digits(bad: str) -> None:
    """`str.isdigit` is true for any Unicode digit: "²" passed (and `int("²")` raises when an order
    is signed), "١٢٣" passed as an id other than the one `int()` reads (123)."""
    for ids in ([bad, NO], [YES, bad]):
        with pytest.raises(MarketParseError, match="decimal ids"):
            parse_market(obj(clobTokenIds=json.dumps(ids)))


def test_the_same_token_id_twice_is_refused() -> None:
    """A YES token that is also the NO token: `outcome_of` calls both YES and `complement_of` is
    the token itself, so both sides' quotes would land on one book."""
    with pytest.raises(MarketParseError, match="same id"):
        parse_market(obj(clobTokenIds=json.dumps([YES, YES])))
    with pytest.raises(MarketParseError, match="same id"):
        parse_market(obj(version="v2", positionIds=["7", " 7"]))


@pytest.mark.parametrize("outcomes, want", [
    ('["Yes", "No"]', (YES, NO)),
    ('["No", "Yes"]', (NO, YES)),
    (["no", "YES "], (NO, YES)),
    ('["Trump", "Harris"]', (YES, NO)),  # not yes/no: the first outcome is the market's YES
    ('["No", "No"]', (YES, NO)),
    ("[", (YES, NO)),  # unreadable outcomes: the ids as listed, as before
    (None, (YES, NO)),
    ("", (YES, NO)),
    ('{"a": 1}', (YES, NO)),
])
def test_token_ids_follow_the_outcome_names(outcomes: Any, want: tuple[str, str]) -> None:
    """Gamma lists `clobTokenIds` (and `positionIds`) in the order of `outcomes`; the ids were taken
    as (YES, NO) whatever `outcomes` said, so a market listed `["No", "Yes"]` had its tokens swapped:
    YES inventory, YES quotes and the settlement side all on the NO token."""
    m = parse_market(obj(outcomes=outcomes))
    assert m.token_ids == want
    v2 = parse_market(obj(version="v2", positionIds=[YES, NO], outcomes=outcomes))
    assert v2.token_ids == want


# --- gamma_terms ----------------------------------------------------------------------------------


def test_exact_numbers() -> None:
    from decimal import InvalidOperation

    from pmm_widgets.venue.gamma_terms import exact

    assert exact(D("0.25")) == D("0.25") and exact(0.1) == D("0.1") and exact(" 3 ") == D(3) and exact(7) == D(7)
    for bad in (True, False, None):
        with pytest.raises(InvalidOperation, match="not a number"):
            exact(bad)
    for bad in ("NaN", "Infinity", "-inf", float("nan"), float("inf"), D("NaN")):
        with pytest.raises(InvalidOperation, match="not finite"):
            exact(bad)


def test_fee_schedule_defaults_and_nulls() -> None:
    from pmm_widgets.domain import GammaFeeSchedule
    from pmm_widgets.venue.gamma_terms import decode_fee_schedule

    assert decode_fee_schedule(True, {}) == (True, GammaFeeSchedule(D(0), D(1), True, D(0)), ())
    nulls = {"rate": None, "rebateRate": None, "exponent": None, "takerOnly": True}
    assert decode_fee_schedule(None, nulls) == (None, GammaFeeSchedule(D(0), D(1), True, D(0)), ())
    zeros = {"rate": 0, "rebateRate": 0, "exponent": 2, "takerOnly": False}
    assert decode_fee_schedule(False, zeros) == (False, GammaFeeSchedule(D(0), D(2), False, D(0)), ())
    assert decode_fee_schedule(1, None) == (None, None, ())  # only a JSON bool is `feesEnabled`
    enabled, sched, problems = decode_fee_schedule(True, [1])
    assert (enabled, sched) == (True, None) and problems == ("feeSchedule is not an object: list",)


def test_reward_fields_defaults_and_bad_entries() -> None:
    from pmm_widgets.venue.gamma_terms import decode_rewards

    assert decode_rewards({}) == (D(0), D(0), (), ())
    assert decode_rewards({"rewardsMinSize": None, "rewardsMaxSpread": None, "clobRewards": None}) == (D(0), D(0), (), ())
    assert decode_rewards({"clobRewards": [{}, {"rewardsDailyRate": None}, {"rewardsDailyRate": "2.5"}]}) == (
        D(0), D(0), (D(0), D(0), D("2.5")), ())
    for entries in ({"rewardsDailyRate": 5}, "x", 7):
        assert decode_rewards({"clobRewards": entries}) == (D(0), D(0), (), ("clobRewards is not a list",))
    _, _, rates, problems = decode_rewards({"clobRewards": [{"rewardsDailyRate": "NaN"}, {"rewardsDailyRate": 1}]})
    assert rates == (D(1),) and problems == ("clobRewards rewardsDailyRate unreadable: 'NaN'",)
    ms, mx, _, problems = decode_rewards({"rewardsMinSize": True, "rewardsMaxSpread": 3})
    assert ms is None and mx is None and problems == ("rewards fields unreadable: not a number: True",)


# --- any JSON in any field: a MarketParseError or a Market, never another exception ---------------

_FIELDS = ("conditionId", "question", "slug", "id", "version", "outcomes", "clobTokenIds", "positionIds",
           "orderPriceMinTickSize", "orderMinSize", "negRisk", "liquidityNum", "liquidity", "volume24hr",
           "active", "closed", "acceptingOrders", "enableOrderBook", "bestBid", "bestAsk", "endDate",
           "feesEnabled", "feeSchedule", "rewardsMinSize", "rewardsMaxSpread", "clobRewards", "events")
_SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**309, max_value=10**400)
            | st.floats() | st.text(max_size=12) | st.sampled_from(["", "NaN", "1e-999999999", "1e400", "0.01",
                                                                   "[\"1\", \"2\"]", "[\"No\", \"Yes\"]", "²"]))
_JSON = st.recursive(_SCALARS, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    st.sampled_from(["rate", "exponent", "rebateRate", "takerOnly", "rewardsDailyRate", "id"]), kids, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=3), st.booleans())
def test_any_json_parses_or_is_refused(fields: dict[str, Any], real_base: bool) -> None:
    from pmm_widgets.venue.gamma_terms import decode_terms

    o = {**obj(), **fields} if real_base else fields
    try:
        m = parse_market(o)
    except MarketParseError:
        pass
    else:
        assert m.tick_size == 0 or m.tick_size in {D(t) for t in ("0.1", "0.01", "0.005", "0.0025", "0.001", "0.0001")}
        assert 0 < m.min_order_size <= 100_000
        assert m.yes_token_id != m.no_token_id or not m.yes_token_id
    decode_terms(o)  # never raises


@pytest.mark.parametrize("fail", [False, True])
async def test_refresh_universe_closes_its_gamma_client(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                        fail: bool) -> None:
    from pmm_widgets.config import Settings, Venue
    from pmm_widgets.venue import universe

    closed: list[bool] = []

    class Recording(GammaClient):
        async def aclose(self) -> None:
            closed.append(True)
            await super().aclose()

    async def broken(gamma: GammaClient, size: int, rank: str = "liquidity") -> list[Market]:
        raise RuntimeError("load failed")

    monkeypatch.setattr(universe, "GammaClient", Recording)
    if fail:
        monkeypatch.setattr(universe, "load_universe", broken)
    settings = Settings(venue=Venue.SANDBOX, db_url=f"sqlite:///{tmp_path / 'u.db'}", sandbox_markets=12,
                        sandbox_seed=3, universe_size=5, _env_file=None)
    if fail:
        with pytest.raises(RuntimeError, match="load failed"):
            await universe.refresh_universe(settings)
    else:
        assert len(await universe.refresh_universe(settings)) == 5
    assert closed == [True]
