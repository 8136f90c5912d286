"""Gamma parsing quirks, token choice by version, universe ranking/diff/table (pure)."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from pmm_widgets.domain import Market
from pmm_widgets.venue.gamma import GammaClient, MarketParseError, parse_market
from pmm_widgets.venue.universe import diff_universe, format_universe, select_universe

YES = "54533043819946592547517511176940999955633860128497669742211153063842200957669"
NO = "87854174148074652060467921081181402357467303721471806610111179101805869578687"


def obj(**over) -> dict:
    base = {"id": "559652", "question": "Will Gavin Newsom win?", "conditionId": "0x0f49" + "0" * 60,
            "slug": "newsom", "liquidity": "230438.22824", "liquidityNum": 230438.22824,
            "outcomes": "[\"Yes\", \"No\"]", "clobTokenIds": json.dumps([YES, NO]),
            "active": True, "closed": False, "enableOrderBook": True, "acceptingOrders": True,
            "orderPriceMinTickSize": 0.001, "orderMinSize": 5, "negRisk": True, "volume24hr": 9066.5,
            "bestBid": 0.232, "bestAsk": 0.233, "positionIds": ["111", "222"]}
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


def test_real_shape_parses_with_v1_ids_and_exact_tick():
    m = parse_market(obj())
    assert (m.yes_token_id, m.no_token_id) == (YES, NO)  # v1 (no version): positionIds ignored
    assert m.tick_size == Decimal("0.001") and m.min_order_size == Decimal(5)
    assert m.neg_risk and m.tradable and m.liquidity_num == 230438.22824 and m.gamma_id == "559652"


def test_v2_takes_position_ids():
    m = parse_market(obj(version="v2"))
    assert (m.yes_token_id, m.no_token_id) == ("111", "222")
    assert parse_market(obj(version="v2", positionIds=json.dumps(["7", "8"]))).token_ids == ("7", "8")


def test_numbers_as_strings_and_bools_as_strings():
    m = parse_market(obj(liquidityNum="1234.5", orderPriceMinTickSize="0.01", orderMinSize="15",
                         negRisk="false", acceptingOrders="true", closed="false"))
    assert m.liquidity_num == 1234.5 and m.tick_size == Decimal("0.01") and m.min_order_size == Decimal(15)
    assert not m.neg_risk and m.tradable


def test_missing_optional_fields_make_untradable_not_unparseable():
    assert parse_market(obj(liquidityNum=...)).liquidity_num == 230438.22824  # from the text `liquidity`
    for over in ({"enableOrderBook": ...}, {"acceptingOrders": ...}, {"clobTokenIds": ...},
                 {"orderPriceMinTickSize": ...}, {"closed": True}, {"active": False}):
        assert not parse_market(obj(**over)).tradable, over
    m = parse_market({"conditionId": "0xabc"})
    assert m.question == "" and m.best_bid is None and not m.tradable


@pytest.mark.parametrize("over, why", [
    ({"conditionId": ...}, "conditionId"),
    ({"clobTokenIds": "[\"1\", "}, "JSON list"),
    ({"clobTokenIds": json.dumps(["1", "2", "3"])}, "expected 2"),
    ({"clobTokenIds": json.dumps(["0xab", "2"])}, "decimal ids"),
    ({"orderPriceMinTickSize": "abc"}, "decimal"),
    ({"liquidityNum": "lots"}, "number"),
    ({"negRisk": "maybe"}, "boolean"),
])
def test_unparseable_markets_say_why(over, why):
    with pytest.raises(MarketParseError, match=why):
        parse_market(obj(**over))


def test_page_parsing_skips_and_counts(caplog):
    g = GammaClient("http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING):
        page = g._parse_page([obj(), "nonsense", obj(conditionId=...), obj(clobTokenIds="[")])
    assert len(page) == 1 and g.skipped == 3 and len(g.skip_reasons) == 3
    assert "skipping Gamma market" in caplog.text


def mk(cid: str, liq: float, **kw) -> Market:
    return Market(condition_id=cid, question=f"Q {cid}", yes_token_id="1" + cid, no_token_id="2" + cid,
                  tick_size=Decimal("0.01"), min_order_size=Decimal(5), liquidity_num=liq, **kw)


def test_select_ranks_tradable_by_liquidity_and_dedupes():
    ms = [mk("a", 10), mk("b", 30), mk("c", 20, closed=True), mk("d", 25, enable_order_book=False),
          mk("b", 30), mk("e", 5), mk("f", 50, accepting_orders=False)]
    assert [m.condition_id for m in select_universe(ms, 2)] == ["b", "a"]
    assert [m.condition_id for m in select_universe(ms, 10)] == ["b", "a", "e"]


def test_diff_universe():
    old = [mk("a", 1), mk("b", 2), mk("c", 3)]
    new = [mk("c", 3), mk("d", 4), mk("a", 1)]
    added, removed = diff_universe(old, new)
    assert [m.condition_id for m in added] == ["d"] and [m.condition_id for m in removed] == ["b"]


def test_format_universe_table():
    long_q = mk("a", 1234567.8, neg_risk=True, best_bid=0.41, best_ask=0.43)
    text = format_universe([long_q, mk("b", 2)], question_width=5)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["#", "question", "liquidity"]
    assert lines[2].split() == ["1", "Q", "a", "1,234,568", "0.410", "0.430", "0.01", "5", "yes"]
    assert lines[3].split()[-4:] == ["-", "0.01", "5", "no"] and lines[-1] == "2 markets"
