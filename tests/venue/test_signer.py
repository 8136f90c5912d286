"""The project's order signer against the SDK: byte-identical bodies, signatures and order ids
for random orders of every tick size, side, neg-risk flag and signature type (0-3); and the
sandbox (which recomputes the EIP-712 signature from the wire values) accepts them."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from eth_account import Account
from py_clob_client_v2.clob_types import CreateOrderOptions, OrderArgsV2, OrderType
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.order_builder.builder import ROUNDING_CONFIG, OrderBuilder
from py_clob_client_v2.order_builder.helpers import round_normal
from py_clob_client_v2.order_utils.exchange_order_builder_v2 import (
    ExchangeOrderBuilderV2,
)
from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2
from py_clob_client_v2.signer import Signer as SdkSigner

from pmm_widgets.domain import Side
from pmm_widgets.venue.signer import OrderSigner, SignerError

TICKS = ["0.1", "0.01", "0.005", "0.0025", "0.001", "0.0001"]


def _sdk_sign(key: str, chain: int, sig_type: int, funder: str | None, token: str, side: Side, price: Decimal,
              size: Decimal, tick: str, neg: bool) -> tuple[dict, str]:
    """What `ClobClient.create_order` + `order_to_json_v2` produce (price pre-rounded as it does)."""
    signer = SdkSigner(key, chain)
    b = OrderBuilder(signer, signature_type=sig_type, funder=funder)
    p = round_normal(float(price), ROUNDING_CONFIG[tick].price)
    so = b.build_order(OrderArgsV2(token_id=token, price=p, size=float(size), side=side.value),
                       CreateOrderOptions(tick_size=tick, neg_risk=neg), version=2)
    cfg = get_contract_config(chain)
    ex = ExchangeOrderBuilderV2(cfg.neg_risk_exchange_v2 if neg else cfg.exchange_v2, chain, signer)
    oid = ex.build_order_hash(ex.build_order_typed_data(so))
    return order_to_json_v2(so, "owner", OrderType.GTC, True)["order"], oid


def _random_order(rnd: random.Random) -> tuple[str, Side, Decimal, Decimal, str, bool]:
    tick = rnd.choice(TICKS)
    t = Decimal(tick)
    n = int(1 / t)
    price = t * rnd.randint(1, n - 1)
    size = Decimal(rnd.randint(100, 500_000)) / 100  # 1.00 .. 5000.00 shares, 2 dp
    token = str(rnd.getrandbits(256))
    return token, rnd.choice([Side.BUY, Side.SELL]), price, size, tick, rnd.random() < 0.5


@pytest.mark.parametrize("sig_type", [0, 1, 2, 3])
def test_signatures_byte_identical_to_the_sdk(sig_type: int) -> None:
    rnd = random.Random(1000 + sig_type)
    acct = Account.create()
    key = acct.key.hex()
    funder = None if sig_type == 0 else Account.create().address
    chain = rnd.choice([137, 80002])
    ours = OrderSigner(key, chain, sig_type, funder)
    assert ours.address == acct.address
    n = 100
    for _ in range(n):
        token, side, price, size, tick, neg = _random_order(rnd)
        sdk_body, sdk_id = _sdk_sign(key, chain, sig_type, funder, token, side, price, size, tick, neg)
        mine = ours.sign(token, side, price, size, Decimal(tick), neg, salt=int(sdk_body["salt"]),
                         timestamp_ms=int(sdk_body["timestamp"]))
        assert mine.body == sdk_body, (token, side, price, size, tick, neg)
        assert list(mine.body) == list(sdk_body)  # same key order: the same JSON text on the wire
        assert mine.order_id == sdk_id
        assert bytes.fromhex(mine.signature[2:]) == bytes.fromhex(sdk_body["signature"][2:])


def test_signer_defaults_and_errors() -> None:
    acct = Account.create()
    s = OrderSigner(acct.key.hex(), 137)
    a = s.sign("123", Side.BUY, Decimal("0.45"), Decimal(10), Decimal("0.01"), False)
    b = s.sign("123", Side.BUY, Decimal("0.45"), Decimal(10), Decimal("0.01"), False)
    assert a.body["maker"] == a.body["signer"] == acct.address
    assert (a.body["makerAmount"], a.body["takerAmount"]) == ("4500000", "10000000")
    assert a.body["salt"] != b.body["salt"] and a.order_id != b.order_id  # a fresh salt per order
    assert abs(int(a.body["timestamp"]) - int(b.body["timestamp"])) < 5000
    recovered = Account._recover_hash(bytes.fromhex(a.order_id[2:]), signature=bytes.fromhex(a.signature[2:]))
    assert recovered == acct.address
    with pytest.raises(SignerError):
        OrderSigner("0x1234", 137)
    with pytest.raises(SignerError):
        OrderSigner(acct.key.hex(), 137, signature_type=4)
    with pytest.raises(SignerError):
        s.sign("1", Side.SELL, Decimal("0.5"), Decimal(5), Decimal("0.02"), False)


def test_keys_and_addresses_are_read_with_or_without_0x() -> None:
    """PMM_PRIVATE_KEY and PMM_FUNDER are usually written with 0x (MetaMask exports, the venue's
    docs); eth-account's `key.hex()` gives none. Both spellings sign as the same wallet."""
    acct = Account.create()
    bare = acct.key.hex().removeprefix("0x")
    funder = Account.create().address
    signers = [OrderSigner(k, 137, 1, f) for k in (bare, "0x" + bare, "0X" + bare)
               for f in (funder, funder[2:], "0X" + funder[2:])]
    assert {s.address for s in signers} == {acct.address}
    kw = dict(salt=7, timestamp_ms=1_700_000_000_000)
    bodies = [s.sign("42", Side.SELL, Decimal("0.37"), Decimal(12), Decimal("0.01"), True, **kw).body for s in signers]
    assert all(b["signature"] == bodies[0]["signature"] for b in bodies)
    for bad in (funder[:-2], funder + "00", "0x"):  # 19, 21 and 0 bytes: not an address
        with pytest.raises(SignerError, match="not an address"):
            OrderSigner(bare, 137, 1, bad)


def test_the_defaults_sign_as_the_eoa_now_with_a_fresh_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from pmm_widgets.venue import signer as signer_module

    acct = Account.create()
    s = OrderSigner(acct.key.hex(), 80002)
    assert (s.signature_type, s.chain_id, s.funder, s.order_signer) == (0, 80002, acct.address, acct.address)
    before = time.time_ns() // 1_000_000
    o = s.sign("9", Side.BUY, Decimal("0.5"), Decimal(2), "0.01", False)  # a tick given as text
    after = time.time_ns() // 1_000_000
    assert before <= int(o.body["timestamp"]) <= after and o.body["signatureType"] == 0
    assert (o.body["makerAmount"], o.body["takerAmount"]) == ("1000000", "2000000")
    assert OrderSigner.amounts(Side.SELL, 0.37, 12, "0.01") == OrderSigner.amounts(Side.SELL, Decimal("0.37"), 12, Decimal("0.010"))
    monkeypatch.setattr(signer_module.random, "random", lambda: 1.0)  # the salt's upper bound: now in ms
    assert before <= signer_module.default_salt() <= time.time_ns() // 1_000_000
    monkeypatch.setattr(signer_module.random, "random", lambda: 0.25)
    assert signer_module.default_salt() == pytest.approx(0.25 * time.time_ns() // 1_000_000, abs=1000)
    with pytest.raises(AttributeError):
        o.order_id = "0x0"  # type: ignore[misc]  # a signed order is immutable
    assert not hasattr(o, "__dict__")
