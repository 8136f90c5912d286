"""Gamma client: the market list, parsed into `Market` objects.

Why so tolerant: the real Gamma objects encode lists as JSON *strings*, write some numbers as
text, and leave any field out. One odd market must not stop a universe refresh, so a market that
cannot be parsed is skipped with a logged reason and counted (`skipped`), never raised.

Why two endpoints: the legacy offset list `/markets` is deprecated and may be switched off
(410) or refuse an offset (422); `/markets/keyset` is its replacement (cursor paging with
`after_cursor`, every filter repeated on every page). The client starts with the seed's legacy
query and falls back to keyset for good once the legacy endpoint is refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from .. import safejson
from ..domain import Market
from ..errors import PmmError
from ..ticks import ALLOWED_TICK_SET, MAX_MIN_ORDER_SIZE, to_decimal
from .gamma_terms import decode_terms
from .http import DEFAULT_DEADLINE_SEC, MAX_RETRY_AFTER_SEC, JsonHttp, VenueHTTPError

log = logging.getLogger(__name__)

LEGACY_REFUSED = frozenset({404, 405, 410, 422})
MAX_PAGES = 50  # a bound on paging (n / page size is far below it in practice)
FILTERS = {"active": "true", "closed": "false", "order": "liquidityNum", "ascending": "false"}
MAX_ID_CHARS = 100  # condition / token ids beyond this are junk input (a condition id is 66)
MAX_TEXT_CHARS = 500  # question, slug: cut before they reach the tape and the DB


class MarketParseError(PmmError, ValueError):
    """Why one Gamma market object was skipped."""


def _json_list(v: Any, name: str) -> list[Any] | None:
    """A list field that may be a real JSON array or a string holding one; None when absent."""
    if v is None or v == "":
        return None
    if isinstance(v, str):
        try:
            v = safejson.loads(v)
        except ValueError:
            raise MarketParseError(f"{name} is not a JSON list: {v[:40]!r}") from None
    if not isinstance(v, list):
        raise MarketParseError(f"{name} is not a list")
    return v


def _bool(v: Any, default: bool) -> bool:
    if v is None:
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        if v != v or v in (float("inf"), float("-inf")):  # `NaN` is JSON to Python's decoder; NaN != 0
            raise MarketParseError(f"not a boolean: {v!r}")
        return v != 0
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("true", "1", "yes"):
            return True
        if s in ("false", "0", "no", ""):
            return False
    raise MarketParseError(f"not a boolean: {v!r}")


def _float(v: Any, default: float | None) -> float | None:
    if v is None or v == "":
        return default
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise MarketParseError(f"not a number: {v!r}") from None
    except OverflowError:  # a JSON integer of 309+ digits: no float holds it
        raise MarketParseError(f"not a finite number: an integer of {len(str(v))} digits") from None
    if f != f or f in (float("inf"), float("-inf")):
        raise MarketParseError(f"not a finite number: {v!r}")
    return f


def _decimal(v: Any, default: Decimal) -> Decimal:
    if v is None or v == "":
        return default
    try:
        d = to_decimal(v)
    except (InvalidOperation, ValueError, TypeError):
        raise MarketParseError(f"not a decimal: {v!r}") from None
    if not d.is_finite() or d < 0:
        raise MarketParseError(f"not a non-negative decimal: {v!r}")
    return d


MAX_RAW_FIELD_CHARS = 4_000


def capped_raw(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The Gamma object as kept in `markets.raw_json`: fields longer than MAX_RAW_FIELD_CHARS (as
    text or JSON) are replaced by a note, so junk input cannot grow the DB by megabytes."""
    out: dict[str, Any] = {}
    for k, v in list(obj.items())[:200]:
        k = str(k)[:MAX_TEXT_CHARS]
        if isinstance(v, str):
            out[k] = v if len(v) <= MAX_RAW_FIELD_CHARS else f"<cut: {len(v)} characters>"
        elif isinstance(v, (dict, list)):
            try:
                n = len(json.dumps(v))
            except (TypeError, ValueError, RecursionError):
                n = MAX_RAW_FIELD_CHARS + 1
            out[k] = v if n <= MAX_RAW_FIELD_CHARS else f"<cut: {n} characters of JSON>"
        else:
            out[k] = v
    return out


def _no_first(obj: Mapping[str, Any]) -> bool:
    """Whether `outcomes` names the outcomes ["No", "Yes"] (any case): the ids are listed in the
    order of `outcomes`, so the first one is then the NO token. Unreadable or other outcomes
    (["Yes", "No"], team names, ...) keep the listed order: the first outcome is the market's YES."""
    try:
        names = _json_list(obj.get("outcomes"), "outcomes")
    except MarketParseError:
        return False
    return names is not None and [str(x).strip().lower() for x in names] == ["no", "yes"]


def token_ids(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(YES, NO) token ids chosen by `version`: v2 markets trade `positionIds`; v1 markets trade
    `clobTokenIds` (their `positionIds`, when present, must be ignored). ("", "") when absent.
    The ids follow `outcomes`: listed as ["No", "Yes"], the first id is the NO token."""
    version = str(obj.get("version") or "v1").strip().lower()
    name = "positionIds" if version == "v2" else "clobTokenIds"
    ids = _json_list(obj.get(name), name)
    if ids is None:
        return "", ""
    if len(ids) != 2:
        raise MarketParseError(f"{name} has {len(ids)} ids, expected 2 (binary market)")
    yes, no = (str(x).strip() for x in ids)
    if not (yes.isascii() and yes.isdigit() and no.isascii() and no.isdigit()):  # not "²", not "١٢٣"
        raise MarketParseError(f"{name} are not decimal ids")
    if yes == no:
        raise MarketParseError(f"{name} holds the same id twice")
    return (no, yes) if _no_first(obj) else (yes, no)


def parse_market(obj: Mapping[str, Any]) -> Market:
    """One Gamma market object -> Market; MarketParseError says why not.

    Missing trading fields make a market untradable rather than unparseable: no token ids or no
    tick size leave them empty / zero, and `enableOrderBook` / `acceptingOrders` count as false
    unless the venue says true (a market it does not vouch for is not quoted).
    """
    if not isinstance(obj, Mapping):
        raise MarketParseError("market is not an object")
    cid = obj.get("conditionId")
    if not isinstance(cid, str) or not cid.strip():
        raise MarketParseError("no conditionId")
    if len(cid) > MAX_ID_CHARS:
        raise MarketParseError(f"conditionId of {len(cid)} characters")
    try:
        yes, no = token_ids(obj)
        if max(len(yes), len(no)) > MAX_ID_CHARS:
            raise MarketParseError("token id too long")
        tick = _decimal(obj.get("orderPriceMinTickSize"), Decimal(0))
        if tick and tick not in ALLOWED_TICK_SET:  # e.g. 1e-999999999: not a tick the venue uses
            raise MarketParseError(f"tick size {str(tick)[:20]} is not one of the venue's")
        min_size = _decimal(obj.get("orderMinSize"), Decimal(5))
        if not 0 < min_size <= MAX_MIN_ORDER_SIZE:
            raise MarketParseError(f"min order size {str(min_size)[:20]} outside (0, {MAX_MIN_ORDER_SIZE}]")
        end = obj.get("endDate")
        return Market(
            condition_id=cid.strip(),
            question=str(obj.get("question") or "")[:MAX_TEXT_CHARS],
            yes_token_id=yes,
            no_token_id=no,
            tick_size=tick,
            min_order_size=min_size,
            neg_risk=_bool(obj.get("negRisk"), False),
            liquidity_num=_float(obj.get("liquidityNum"), None) or _float(obj.get("liquidity"), 0.0) or 0.0,
            volume_24h=_float(obj.get("volume24hr"), 0.0) or 0.0,
            slug=str(obj.get("slug") or "")[:MAX_TEXT_CHARS],
            gamma_id=str(obj.get("id") or "")[:MAX_ID_CHARS],
            active=_bool(obj.get("active"), True),
            closed=_bool(obj.get("closed"), False),
            accepting_orders=_bool(obj.get("acceptingOrders"), False),
            enable_order_book=_bool(obj.get("enableOrderBook"), False),
            best_bid=_float(obj.get("bestBid"), None),
            best_ask=_float(obj.get("bestAsk"), None),
            end_date=str(end)[:40] if end else None,
            terms=decode_terms(obj),
            raw=capped_raw(obj),
        )
    except MarketParseError as exc:
        raise MarketParseError(f"{cid[:14]}…: {exc}") from None


class GammaClient:
    """`fetch_markets(n)` pages through Gamma's market list (most liquid first) until it has seen
    `n` tradable markets or the list ends. Counters: `skipped` (unparseable objects, with the
    last reasons in `skip_reasons`), `used_keyset` (the legacy endpoint was refused)."""

    def __init__(self, base_url: str, timeout: float = 10.0, *, http: JsonHttp | None = None,
                 retries: int = 4, deadline: float = DEFAULT_DEADLINE_SEC,
                 retry_after_max: float = MAX_RETRY_AFTER_SEC) -> None:
        self.http = http or JsonHttp(base_url, timeout=timeout, retries=retries, deadline=deadline,
                                     retry_after_max=retry_after_max)
        self.legacy_off = False
        self.used_keyset = False
        self.skipped = 0
        self.skip_reasons: list[str] = []

    async def aclose(self) -> None:
        await self.http.aclose()

    async def fetch_markets(self, n: int) -> list[Market]:
        """Markets in the venue's order, parsed, untradable ones included (the caller ranks)."""
        if n <= 0:
            return []
        if not self.legacy_off:
            try:
                return await self._fetch_legacy(n)
            except VenueHTTPError as exc:
                if exc.status not in LEGACY_REFUSED:
                    raise
                log.warning("Gamma /markets refused (%s); using /markets/keyset from now on", exc)
                self.legacy_off = True
            except _NotAList:
                log.warning("Gamma /markets did not answer a list; using /markets/keyset from now on")
                self.legacy_off = True
        self.used_keyset = True
        return await self._fetch_keyset(n)

    async def _fetch_legacy(self, n: int) -> list[Market]:
        out: list[Market] = []
        tradable, offset = 0, 0
        for _ in range(MAX_PAGES):
            body = await self.http.get("/markets", {"limit": n, "offset": offset, **FILTERS})
            if not isinstance(body, list):
                raise _NotAList()
            page = self._parse_page(body)
            out.extend(page)
            tradable += sum(m.tradable for m in page)
            offset += len(body)
            if tradable >= n or not body:  # (a short page is not the end: the venue may cap `limit`)
                break
        return out

    async def _fetch_keyset(self, n: int) -> list[Market]:
        out: list[Market] = []
        tradable = 0
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"limit": n, **FILTERS}
            if cursor:
                params["after_cursor"] = cursor
            body = await self.http.get("/markets/keyset", params)
            if not isinstance(body, Mapping) or not isinstance(body.get("markets"), list):
                raise VenueHTTPError("GET", "/markets/keyset", 200, "unexpected body (no markets list)")
            page = self._parse_page(body["markets"])
            out.extend(page)
            tradable += sum(m.tradable for m in page)
            cursor = body.get("next_cursor") or None
            if tradable >= n or not cursor or not body["markets"]:
                break
        return out

    def _parse_page(self, objs: list[Any]) -> list[Market]:
        page: list[Market] = []
        for obj in objs:
            try:
                page.append(parse_market(obj))
            except MarketParseError as exc:
                self.skipped += 1
                self.skip_reasons = (self.skip_reasons + [str(exc)])[-20:]
                log.warning("skipping Gamma market: %s", exc)
        return page


class _NotAList(PmmError):
    """The legacy endpoint answered 200 with something other than the bare array it used to."""
