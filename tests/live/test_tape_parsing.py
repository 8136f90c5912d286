"""Pure parsing of the user tape: frames, statuses, times, and which fills are ours."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.execution.live import event_ts, norm_status, our_fills
from pmm_widgets.venue.user_stream import parse_frame

KEY = "11111111-2222-4333-8444-555555555555"
ADDR = "0xabcdef0000000000000000000000000000000001"
YES, NO = "111", "222"


def known(ids):
    return lambda vid: vid in ids


def test_frames_object_array_pong_and_garbage():
    assert parse_frame("PONG") == []
    assert parse_frame('{"event_type":"order"}') == [{"event_type": "order"}]
    assert parse_frame('[{"a":1},{"b":2}]') == [{"a": 1}, {"b": 2}]
    assert parse_frame('{"event_type": "trade", "market": "0x') is None
    assert parse_frame("[1, 2]") is None and parse_frame("INVALID MESSAGE") is None


def test_status_and_time_spellings():
    assert norm_status("TRADE_STATUS_CONFIRMED") == "CONFIRMED" == norm_status("confirmed")
    assert event_ts({"match_time": "1700000000"}, 0) == 1700000000.0
    assert event_ts({"matchtime": "1700000001"}, 0) == 1700000001.0
    assert event_ts({"timestamp": "1700000002500"}, 0) == 1700000002.5
    assert event_ts({}, 5.0) == 5.0


def maker_trade(entries, top_asset=YES, top_side="BUY"):
    return {"event_type": "trade", "id": "t1", "taker_order_id": "0xtaker", "asset_id": top_asset, "side": top_side,
            "price": "0.52", "size": "10", "owner": "someone-else", "trader_side": "MAKER", "maker_orders": entries}


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
    assert [(f["order_id"], f["token_id"], f["side"], f["price"], f["size"]) for f in fills] == [
        ("0xours", NO, "BUY", "0.48", "7"), ("0xmine2", YES, "SELL", "0.52", "1")]


def test_taker_fill_is_the_top_level():
    ev = {"event_type": "trade", "id": "t2", "taker_order_id": "0xmine", "asset_id": YES, "side": "SELL",
          "price": "0.40", "size": "5", "owner": KEY, "trader_side": "TAKER", "fee_rate_bps": "400",
          "maker_orders": [{"order_id": "0xbg", "owner": "x", "matched_amount": "5", "price": "0.40", "asset_id": YES}]}
    assert our_fills(ev, KEY, set(), known({"0xmine"})) == [
        {"order_id": "0xmine", "token_id": YES, "side": "SELL", "price": "0.40", "size": "5", "liquidity": "TAKER",
         "fee_rate_bps": "400"}]


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
    assert [f["order_id"] for f in fills] == [f"0x{i}" for i, e in enumerate(entries) if e[0]]
    for f, (_mine, asset, side) in zip(fills, [e for e in entries if e[0]]):
        expected = side or ((("SELL" if top_side == "BUY" else "BUY")) if asset == YES else top_side)
        assert f["side"] == expected and f["token_id"] == asset
