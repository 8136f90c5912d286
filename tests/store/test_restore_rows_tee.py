"""The rows a restart continues from, recorded as the engine writes them (`RestoreRowsTee`), read
back by a replay whose window opens inside a session (`replayer.rows_from_records`), give what the
DB holding the same writes gives: a fill's fee, rebate and FAILED status are updates of its row,
written after it (the replay used to restore those fills with fee and rebate 0, and count a live
trade that later FAILED)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pmm_widgets.domain import Fill, FillType, Mode, Side
from pmm_widgets.engine.restore import parse_rows
from pmm_widgets.research.replayer import db_rows, rows_from_records
from pmm_widgets.store.recorder import DbRecorder
from pmm_widgets.store.recording import RestoreRowsTee, dumps
from pmm_widgets.store.sink import MemorySink


class Records:
    """The engine channel's `rows` payloads, as the recorder would write them."""

    def __init__(self) -> None:
        self.payloads: list[str] = []

    def engine(self, ts: float, kind: str, payload: Any = None) -> None:
        assert kind == "rows"
        self.payloads.append(dumps(payload))


def _fill(n: int, ts: float, side: Side = Side.BUY) -> Fill:
    return Fill(f"t{n}", f"o{n}", "m1", "tokY", side, Decimal("0.42"), Decimal("10"), FillType.FILLED, Mode.LIVE,
                ts, raw={"book_mid": "0.425", "venue": "payload"})


def test_recorded_rows_and_their_updates_restore_as_the_db_does() -> None:
    sink, records = MemorySink(), Records()
    rec = DbRecorder(RestoreRowsTee(sink, records))  # type: ignore[arg-type]
    t0 = 1000.0
    rec.fill(_fill(1, 990.0))
    rec.fill_economics("t1", Decimal("0.0125"), Decimal("0"), "TAKER")
    rec.fill(_fill(2, 995.0, Side.SELL))
    rec.fill_economics("t2", Decimal("0"), Decimal("0.00735"), "MAKER")
    rec.fill(_fill(3, 997.0))
    rec.fill_economics("t3", Decimal("0.002"), Decimal("0"), "TAKER")
    rec.trade_status("t3", "FAILED", {"status": "FAILED"})  # the venue's settlement failed it
    rec.trade_status("t1", "CONFIRMED", {"status": "CONFIRMED", "book_mid": "0.43"})
    rec.fill(_fill(4, 1001.0))  # after t0: not the state at t0
    rec.fill_economics("t4", Decimal("0.5"), Decimal("0"), "TAKER")
    rec.fill_economics("t9", Decimal("1"), Decimal("0"), "TAKER")  # a row the records lack: ignored

    db = parse_rows(db_rows([r for r in sink.rows["trades"] if r["ts"] < t0], [], []))
    got = rows_from_records(records.payloads, t0)
    assert got == db
    assert [(t.fee, t.rebate, t.mid) for t in got.trades] == [
        (Decimal("0.0125"), 0, Decimal("0.43")), (0, Decimal("0.00735"), Decimal("0.425"))]
    assert got.failed == 1
    # orders' updates, and updates of other tables, are not restore rows
    n = len(records.payloads)
    rec.sink.update("orders", {"client_id": "o1"}, {"status": "CANCELED"})
    rec.sink.update("trades", {"mode": "live"}, {"status": "CONFIRMED"})
    assert len(records.payloads) == n
