"""Row builders shared by the store tests (importable: tests/store is on sys.path under pytest)."""

from __future__ import annotations

from decimal import Decimal

from pmm_widgets.domain import Mode, OrderStatus, Side


def order_row(cid: str, **kw) -> dict:
    row = dict(
        client_id=cid, mode=Mode.PAPER, market="m1", token_id="tok", side=Side.BUY,
        price=Decimal("0.53"), size=Decimal("10"), status=OrderStatus.LIVE, created_ts=1.0, updated_ts=1.0,
    )
    row.update(kw)
    return row
