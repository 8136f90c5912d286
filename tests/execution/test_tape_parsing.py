"""Pure parsing of the user tape: frames, statuses, times, and which fills are ours."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.domain import Side
from pmm_widgets.execution.live import OurFill, our_fills
from pmm_widgets.venue.user_stream import parse_frame
from pmm_widgets.venue.wire import Liquidity, OrderEvent, Refused, Trade, TradeEvent, TradeStatus, convert

KEY = "11111111-2222-4333-8444-555555555555"
ADDR = "0xabcdef0000000000000000000000000000000001"
YES, NO = "111", "222"


def known(ids):
    return lambda vid: vid in ids


def test_frames_object_array_pong_and_garbage():
    assert parse_frame("PONG") == []
    [ev] = parse_frame('{"event_type":"order","id":"0xo","status":"LIVE"}')
    assert isinstance(ev, OrderEvent) and ev.id == "0xo"
    a, b = parse_frame('[{"a":1},{"event_type":"trade","id":"t"}]')
    assert isinstance(a, Refused) and a.unknown and isinstance(b, TradeEvent) and b.id == "t"
    [bad] = parse_frame('{"event_type":"order"}')  # a known event without its id: refused, the field named
    assert isinstance(bad, Refused) and not bad.unknown and "`id`" in bad.reason
    assert parse_frame('{"event_type": "trade", "market": "0x') is None and parse_frame("INVALID MESSAGE") is None
    assert all(isinstance(x, Refused) and not x.unknown for x in parse_frame("[1, 2]"))


def trade(**kw) -> Trade:
    return convert({"id": "t", **kw}, Trade)


def test_status_and_time_spellings():
    assert trade(status="TRADE_STATUS_CONFIRMED").trade_status is TradeStatus.CONFIRMED
    assert trade(status="confirmed").trade_status is TradeStatus.CONFIRMED
    assert trade(status="").trade_status is None and trade(status="NEW_THING").trade_status is TradeStatus.UNKNOWN
    assert trade(match_time="1700000000").venue_ts(0) == 1700000000.0
    assert trade(matchtime="1700000001").venue_ts(0) == 1700000001.0
    assert trade(timestamp="1700000002500").venue_ts(0) == 1700000002.5
    assert trade().venue_ts(5.0) == 5.0


def maker_trade(entries, top_asset=YES, top_side="BUY") -> Trade:
    return convert({"event_type": "trade", "id": "t1", "taker_order_id": "0xtaker", "asset_id": top_asset,
                    "side": top_side, "price": "0.52", "size": "10", "owner": "someone-else", "trader_side": "MAKER",
                    "maker_orders": entries}, TradeEvent)


def test_maker_fill_by_owner_or_address_and_complement_side():
    ev = maker_trade([
        {"order_id": "0xours", "owner": KEY, "maker_address": ADDR, "matched_amount": "7", "price": "0.48",
         "asset_id": NO},  # complement, no side: same side as the taker (BUY NO vs BUY YES: a mint)
        {"order_id": "0xother", "owner": "x", "maker_address": "0x9", "matched_amount": "3", "price": "0.52",
         "asset_id": YES},
        {"order_id": "0xmine2", "owner": "", "maker_address": ADDR.upper().replace("0X", "0x"), "matched_amount": "1",
         "price": "0.52", "asset_id": YES},  # same token, no side: the taker's opposite
    ])
    fills = our_fills(ev, KEY, {ADDR.lower()}, known(set()))
    assert [(f.order_id, f.token_id, f.side, f.price, f.size, f.liquidity) for f in fills] == [
        ("0xours", NO, Side.BUY, Decimal("0.48"), Decimal(7), Liquidity.MAKER),
        ("0xmine2", YES, Side.SELL, Decimal("0.52"), Decimal(1), Liquidity.MAKER)]


def test_taker_fill_is_the_top_level():
    ev = convert({"event_type": "trade", "id": "t2", "taker_order_id": "0xmine", "asset_id": YES, "side": "SELL",
                  "price": "0.40", "size": "5", "owner": KEY, "trader_side": "TAKER", "fee_rate_bps": "400",
                  "maker_orders": [{"order_id": "0xbg", "owner": "x", "matched_amount": "5", "price": "0.40",
                                    "asset_id": YES}]}, TradeEvent)
    assert our_fills(ev, KEY, set(), known({"0xmine"})) == [
        OurFill("0xmine", YES, Side.SELL, Decimal("0.40"), Decimal(5), Liquidity.TAKER, Decimal(400))]


def test_someone_elses_trade_has_no_fill_for_us():
    ev = maker_trade([{"order_id": "0xo", "owner": "x", "maker_address": "0x9", "matched_amount": "3",
                       "price": "0.5", "asset_id": YES}])
    assert our_fills(ev, KEY, {ADDR}, known(set())) == []


@given(st.lists(st.tuples(st.booleans(), st.sampled_from([YES, NO]), st.sampled_from(["BUY", "SELL", None])),
                max_size=6), st.sampled_from(["BUY", "SELL"]))
def test_every_owned_entry_and_only_those(entries, top_side):
    mos = []
    for i, (mine, asset, side) in enumerate(entries):
        mo = {"order_id": f"0x{i}", "owner": KEY if mine else "x", "maker_address": "0x9", "matched_amount": "1",
              "price": "0.5", "asset_id": asset}
        if side:
            mo["side"] = side
        mos.append(mo)
    fills = our_fills(maker_trade(mos, YES, top_side), KEY, set(), known(set()))
    assert [f.order_id for f in fills] == [f"0x{i}" for i, e in enumerate(entries) if e[0]]
    for f, (_mine, asset, side) in zip(fills, [e for e in entries if e[0]]):
        expected = side or ((("SELL" if top_side == "BUY" else "BUY")) if asset == YES else top_side)
        assert f.side.value == expected and f.token_id == asset
