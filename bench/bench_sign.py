"""Order signing throughput: the SDK (py-clob-client-v2) against the project's signer, one run.

Three paths sign the same random post-only limit orders (ticks 0.01 and 0.001, both sides,
standard and neg-risk exchange, signature type 0):
- `sdk-pure`: `OrderBuilder.build_order` (what `ClobClient.create_order` runs after its cached
  tick/version look-ups) with eth_keys forced onto its pure-Python ECDSA backend
  (`ECC_BACKEND_CLASS=eth_keys.backends.NativeECCBackend`): the SDK as a fresh install without
  coincurve runs it. This is the baseline of the ratio.
- `sdk-coincurve`: the same SDK call with coincurve (eth_keys' default once it is installed).
- `project`: `pmm_widgets.venue.signer.OrderSigner.sign` (key parsed once, digest built directly).
Each figure is the median of --runs timed runs of --orders orders (orders/s); every project
signature is compared byte for byte with the SDK's for the same salt and timestamp.

Last line: `sign: sdk=<orders/s> project=<orders/s> ratio=<x> identical=yes|no` (sdk = the
pure-Python SDK path). Goal: project >= 5,000/s and >= 20x. Finishes in well under a minute.

Usage: python bench/bench_sign.py [--runs 3] [--orders 300]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from decimal import Decimal

from eth_account import Account
from py_clob_client_v2.clob_types import CreateOrderOptions, OrderArgsV2, OrderType
from py_clob_client_v2.order_builder.builder import OrderBuilder
from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2
from py_clob_client_v2.signer import Signer

from pmm_widgets.domain import Side
from pmm_widgets.venue.signer import OrderSigner

PURE = "eth_keys.backends.NativeECCBackend"


def make_orders(n: int, seed: int) -> list[tuple[str, Side, Decimal, Decimal, str, bool]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        tick = rnd.choice(["0.01", "0.001"])
        t = Decimal(tick)
        out.append((str(rnd.getrandbits(255)), rnd.choice([Side.BUY, Side.SELL]), t * rnd.randint(1, int(1 / t) - 1),
                    Decimal(rnd.randint(500, 20000)) / 100, tick, rnd.random() < 0.3))
    return out


def sdk_sign(key: str, orders: list, backend: str | None) -> tuple[float, list[dict]]:
    """Orders/s of the SDK path (a Signer per call like ClobClient's builder reuses one; the key
    is re-parsed inside every Account.sign_message anyway), and the order bodies."""
    if backend:
        os.environ["ECC_BACKEND_CLASS"] = backend
    else:
        os.environ.pop("ECC_BACKEND_CLASS", None)
    b = OrderBuilder(Signer(key, 137))
    bodies = []
    t0 = time.perf_counter()
    for tok, side, price, size, tick, neg in orders:
        so = b.build_order(OrderArgsV2(token_id=tok, price=float(price), size=float(size), side=side.value),
                           CreateOrderOptions(tick_size=tick, neg_risk=neg), version=2)
        bodies.append(order_to_json_v2(so, "", OrderType.GTC, True)["order"])
    dt = time.perf_counter() - t0
    os.environ.pop("ECC_BACKEND_CLASS", None)
    return len(orders) / dt, bodies


def project_sign(signer: OrderSigner, orders: list, ref: list[dict]) -> tuple[float, bool]:
    """Orders/s of the project's signer, signing with the SDK's salts and timestamps; then
    (untimed) whether every body, signature included, equals the SDK's."""
    salts = [(int(r["salt"]), int(r["timestamp"])) for r in ref]
    t0 = time.perf_counter()
    signed = [signer.sign(tok, side, price, size, tick, neg, salt=s, timestamp_ms=ts)
              for (tok, side, price, size, tick, neg), (s, ts) in zip(orders, salts)]
    dt = time.perf_counter() - t0
    return len(orders) / dt, all(so.body == r for so, r in zip(signed, ref))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--orders", type=int, default=300)
    a = ap.parse_args()
    key = Account.create().key.hex()
    signer = OrderSigner(key, 137)
    pure_n = max(20, a.orders // 10)  # the pure-Python path is ~100x slower: fewer orders
    pure, cc, proj, same = [], [], [], True
    for r in range(a.runs):
        orders = make_orders(a.orders, seed=r)
        p_rate, p_bodies = sdk_sign(key, orders[:pure_n], PURE)
        c_rate, c_bodies = sdk_sign(key, orders, None)
        j_rate, ok = project_sign(signer, orders, c_bodies)
        _, ok_pure = project_sign(signer, orders[:pure_n], p_bodies)
        pure.append(p_rate)
        cc.append(c_rate)
        proj.append(j_rate)
        same = same and ok and ok_pure
        print(f"run {r + 1}: sdk-pure {p_rate:,.0f}/s ({pure_n} orders)  sdk-coincurve {c_rate:,.0f}/s  "
              f"project {j_rate:,.0f}/s  identical={'yes' if ok and ok_pure else 'no'}", flush=True)
    sdk, ccm, pj = statistics.median(pure), statistics.median(cc), statistics.median(proj)
    print(f"median of {a.runs}: sdk-pure {sdk:,.0f}/s ({1e3 / sdk:.2f} ms/order)  "
          f"sdk-coincurve {ccm:,.0f}/s ({pj / ccm:.1f}x slower than project)  project {pj:,.0f}/s "
          f"({1e6 / pj:.0f} us/order)")
    print(f"sign: sdk={sdk:.0f} project={pj:.0f} ratio={pj / sdk:.1f} identical={'yes' if same else 'no'}")


if __name__ == "__main__":
    main()
