"""The venue's wire shapes, decoded once at the edge into typed structs (msgspec).

Why: everything past `venue/` works on these types, never on the raw JSON dicts; a shape the
venue changes is then one edit here, and a payload that lacks a required field is refused here
with one line naming the field (`WireError`), counted by the stream that received it.

How (see `../shared/polymarket-api.md` §2, §3, §5; where it and py-clob-client-v2 disagree,
the SDK wins):
- Every struct ignores unknown fields (the venue adds fields; custom features add events).
- Ids (token ids are uint256 written in decimal: 75-78 digits) are decoded as `str`, never as
  numbers, so they survive exactly. Prices and sizes stay the venue's decimal strings: the book
  keys its price cache on them and `ticks.to_decimal` turns them into exact Decimals.
- Timestamps and a few numbers the venue sends as strings or numbers (`timestamp`, `tick_size`,
  `min_order_size`, `fee_rate_bps`, `created_at`) are typed `str | int | float | None`; the
  consumer's bounded parser (`book.parse_ts_ms`, `ticks.venue_tick`) has the last word.
- Statuses, sides and event kinds are enums. Status fields keep the venue's raw text (a killed
  FOK's status is `CANCELED_<reason>`, REST spells trade statuses `TRADE_STATUS_<X>`) and
  expose the normalised enum (`Trade.trade_status`, `VenueOrder.order_status`).
- Decoding a frame: one typed msgspec pass for the whole frame (the common case); if that
  fails (a malformed or unknown event in it, or bad JSON), the frame is decoded generically
  (`safejson`, which refuses deep nesting without crashing) and event by event, so one bad
  event costs only itself. Frames with `safejson.MAX_DEPTH` or more brackets reach msgspec only
  once orjson (fixed depth limit, no C recursion) has parsed them (`safejson.shallow`): msgspec's
  skipping of unknown nested values recurses on the C stack like the stdlib's. (A sandbox tick of
  200 assets is one ~150 KB frame of ~750 brackets: 0.5 ms that way, 4.5 ms event by event.)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import msgspec

from .. import safejson
from ..domain import Side
from ..errors import PmmError

Num: TypeAlias = str | int | float | None  # a number the venue may send as text or as JSON number
MAX_TS_SEC = 1e11  # a venue time (epoch s) beyond this (year 5138, as `book.MAX_TS_MS`) is junk input


class WireError(PmmError, ValueError):
    """A venue payload that does not have the documented shape; the text names the field."""


# ---------------------------------------------------------------------------------- enums
class MarketEventType(str, enum.Enum):
    """`event_type` of the market channel (`best_bid_ask`, `new_market`, `market_resolved` are
    custom features, sent with `custom_feature_enabled`)."""

    BOOK = "book"
    PRICE_CHANGE = "price_change"
    TICK_SIZE_CHANGE = "tick_size_change"
    LAST_TRADE_PRICE = "last_trade_price"
    BEST_BID_ASK = "best_bid_ask"
    NEW_MARKET = "new_market"
    MARKET_RESOLVED = "market_resolved"


class UserEventType(str, enum.Enum):
    """`event_type` of the user channel."""

    ORDER = "order"
    TRADE = "trade"


class OrderEventKind(str, enum.Enum):
    """`type` of a user-channel `order` event; UNKNOWN for a kind the venue adds later."""

    PLACEMENT = "PLACEMENT"
    UPDATE = "UPDATE"
    CANCELLATION = "CANCELLATION"
    UNKNOWN = "UNKNOWN"


class TradeStatus(str, enum.Enum):
    """A venue trade's settlement status: MATCHED → MINED → CONFIRMED, or RETRYING → (MINED |
    FAILED). Only CONFIRMED and FAILED are final. MATCHED_NOT_BROADCASTED is in the SDK
    (`account.py`), not in the docs. UNKNOWN: a status this code does not know (kept moving,
    never final, never a reversal)."""

    MATCHED = "MATCHED"
    MINED = "MINED"
    CONFIRMED = "CONFIRMED"
    RETRYING = "RETRYING"
    FAILED = "FAILED"
    MATCHED_NOT_BROADCASTED = "MATCHED_NOT_BROADCASTED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_final(self) -> bool:
        return self in (TradeStatus.CONFIRMED, TradeStatus.FAILED)

    @classmethod
    def parse(cls, raw: str) -> TradeStatus | None:
        """`TRADE_STATUS_CONFIRMED` (REST) and `CONFIRMED`/`confirmed` (WS) alike; None when empty."""
        s = _norm(raw, "TRADE_STATUS_")
        return cls.__members__.get(s, cls.UNKNOWN) if s else None


class VenueOrderStatus(str, enum.Enum):
    """The venue's status of an order (user channel `order` events, `/data/orders`). A status
    starting with CANCELED (`CANCELED_MARKET_RESOLVED`, a killed FOK's `CANCELED_<reason>`) is a
    cancel; the docs' list ends in "…": anything else unknown is UNKNOWN."""

    LIVE = "LIVE"
    MATCHED = "MATCHED"
    DELAYED = "DELAYED"
    UNMATCHED = "UNMATCHED"
    CANCELED = "CANCELED"
    CANCELED_MARKET_RESOLVED = "CANCELED_MARKET_RESOLVED"
    INVALID = "INVALID"
    UNKNOWN = "UNKNOWN"

    @property
    def is_cancel(self) -> bool:
        return self in (VenueOrderStatus.CANCELED, VenueOrderStatus.CANCELED_MARKET_RESOLVED)

    @classmethod
    def parse(cls, raw: str) -> VenueOrderStatus | None:
        s = _norm(raw, "ORDER_STATUS_")
        if not s:
            return None
        return cls.__members__.get(s) or (cls.CANCELED if s.startswith("CANCELED") else cls.UNKNOWN)


class Liquidity(str, enum.Enum):
    """`trader_side` of a trade: whose order took liquidity."""

    TAKER = "TAKER"
    MAKER = "MAKER"


def _norm(raw: str, prefix: str) -> str:
    """A status as the enums spell it: upper case, without the REST prefix."""
    return raw.strip().upper().removeprefix(prefix)


def parse_side(raw: str) -> Side | None:
    """A wire side in any case; None when empty or not BUY/SELL."""
    return Side.__members__.get(_norm(raw, ""))


# ---------------------------------------------------------------------------------- market channel
class PriceLevel(msgspec.Struct, gc=False):
    """One level of a wire book: decimal strings."""

    price: str
    size: str


class BookSnapshot(msgspec.Struct, gc=False):
    """A full book: REST `/book`, one element of `POST /books`, and (as `BookEvent`) the market
    channel's `book`. Bids ascending and asks descending on the wire (best last); never relied on."""

    asset_id: str
    market: str = ""
    timestamp: Num = None  # epoch ms (a string on the wire)
    hash: str = ""
    bids: list[PriceLevel] = []
    asks: list[PriceLevel] = []
    tick_size: Num = None
    min_order_size: Num = None
    neg_risk: bool | None = None
    last_trade_price: str | None = None  # "" before the first trade


class BookEvent(BookSnapshot, tag_field="event_type", tag="book", gc=False):
    """Market channel `book`: replaces the local book of `asset_id`."""


class PriceChange(msgspec.Struct, gc=False):
    """One entry of `price_changes`: the new total size at a level ("0" removes it); `hash` and
    `best_bid`/`best_ask` describe the book after the change."""

    asset_id: str
    price: str
    size: str
    side: str  # BUY: the bid side (the book accepts BUY/SELL/BID/ASK in either case)
    hash: str | None = None
    best_bid: str | None = None
    best_ask: str | None = None


class PriceChangeEvent(msgspec.Struct, tag_field="event_type", tag="price_change", gc=False):
    """Market channel `price_change` (format since Sept 2025): may touch both tokens of a market."""

    price_changes: list[PriceChange]
    market: str = ""
    timestamp: Num = None


class TickSizeChangeEvent(msgspec.Struct, tag_field="event_type", tag="tick_size_change", gc=False):
    asset_id: str
    new_tick_size: Num = None
    old_tick_size: Num = None
    market: str = ""
    timestamp: Num = None


class LastTradePriceEvent(msgspec.Struct, tag_field="event_type", tag="last_trade_price", gc=False):
    """A print of the public tape; `side` is the taker's."""

    asset_id: str
    price: str
    size: str
    side: Side
    market: str = ""
    fee_rate_bps: Num = None
    timestamp: Num = None
    transaction_hash: str | None = None


class MarketResolvedEvent(msgspec.Struct, tag_field="event_type", tag="market_resolved", gc=False):
    """Custom feature: the market closed; `winning_asset_id` is the token that pays 1."""

    market: str
    winning_asset_id: str | None = None
    winning_outcome: str | None = None
    id: str | None = None
    question: str | None = None
    slug: str | None = None
    assets_ids: list[str] = []
    timestamp: Num = None


class BestBidAskEvent(msgspec.Struct, tag_field="event_type", tag="best_bid_ask", gc=False):
    """Custom feature, not used (the book gives the same)."""


class NewMarketEvent(msgspec.Struct, tag_field="event_type", tag="new_market", gc=False):
    """Custom feature, not used (the universe comes from Gamma)."""


MarketEvent: TypeAlias = (BookEvent | PriceChangeEvent | TickSizeChangeEvent | LastTradePriceEvent
                          | MarketResolvedEvent | BestBidAskEvent | NewMarketEvent)
IGNORED_MARKET_EVENTS = (BestBidAskEvent, NewMarketEvent)
MARKET_EVENT_TYPES = frozenset(m.value for m in MarketEventType)


# ---------------------------------------------------------------------------------- user channel / account REST
class MakerOrder(msgspec.Struct, gc=False):
    """One maker order inside a trade; may be on the complement token (`asset_id`)."""

    order_id: str = ""
    owner: str = ""
    maker_address: str = ""
    matched_amount: str = ""
    price: str = ""
    asset_id: str = ""
    outcome: str | None = None
    fee_rate_bps: Num = None
    side: str = ""  # not always present: then the taker's opposite on the same token


class Trade(msgspec.Struct, gc=False):
    """A venue trade: REST `/data/trades` rows and (as `TradeEvent`) user channel `trade` events.
    The top-level side/price/size are the taker's."""

    id: str
    taker_order_id: str = ""
    market: str = ""
    asset_id: str = ""
    side: str = ""
    size: str = ""
    price: str = ""
    status: str = ""
    owner: str = ""
    trade_owner: str = ""
    maker_address: str = ""
    trader_side: str = ""
    outcome: str | None = None
    fee_rate_bps: Num = None
    bucket_index: int | None = None
    transaction_hash: str | None = None
    match_time: Num = None  # epoch s (REST and the docs' schema)
    matchtime: Num = None  # the docs' example (and the sandbox's events) spell it so: accept both
    last_update: Num = None
    timestamp: Num = None  # epoch ms (events)
    maker_orders: list[MakerOrder] | None = None

    @property
    def trade_status(self) -> TradeStatus | None:
        return TradeStatus.parse(self.status)

    @property
    def liquidity(self) -> Liquidity | None:
        return Liquidity.__members__.get(_norm(self.trader_side, ""))

    def venue_ts(self, default: float) -> float:
        """Venue time (epoch s): match_time / matchtime (s), else timestamp (ms), else `default`.
        A value that is no time (unreadable, negative, not finite, beyond `MAX_TS_SEC`) is skipped:
        the live exchange backfills from the latest one (`int(ts - margin)`: an inf or a NaN raised)."""
        for v, scale in ((self.match_time, 1.0), (self.matchtime, 1.0), (self.timestamp, 1000.0)):
            if v not in (None, "") and not isinstance(v, bool):
                try:
                    ts = float(v) / scale
                except (ValueError, OverflowError):  # (OverflowError: an integer beyond a float)
                    continue
                if 0.0 <= ts <= MAX_TS_SEC:  # (False for a NaN)
                    return ts
        return default


class TradeEvent(Trade, tag_field="event_type", tag="trade", gc=False):
    """User channel `trade` (`type` "TRADE"): every status transition of the trade."""

    type: str = ""


class VenueOrder(msgspec.Struct, gc=False):
    """A venue order: REST `/data/orders` rows, `/data/order/{id}`, and (as `OrderEvent`) user
    channel `order` events. `created_at` is epoch s (a number in REST, a string on the WS)."""

    id: str
    status: str = ""
    owner: str = ""
    maker_address: str = ""
    market: str = ""
    asset_id: str = ""
    side: str = ""
    original_size: str = "0"
    size_matched: str = "0"
    price: str = ""
    outcome: str | None = None
    order_type: str | None = None
    expiration: Num = None
    associate_trades: list[str] | None = None
    created_at: Num = None

    @property
    def order_status(self) -> VenueOrderStatus | None:
        return VenueOrderStatus.parse(self.status)

    @property
    def side_enum(self) -> Side | None:
        return parse_side(self.side)


class OrderEvent(VenueOrder, tag_field="event_type", tag="order", gc=False):
    """User channel `order`: PLACEMENT, UPDATE (a fill), CANCELLATION."""

    type: str = ""
    order_owner: str = ""
    timestamp: Num = None

    @property
    def kind(self) -> OrderEventKind:
        return OrderEventKind.__members__.get(_norm(self.type, ""), OrderEventKind.UNKNOWN)
UserEvent: TypeAlias = OrderEvent | TradeEvent
USER_EVENT_TYPES = frozenset(m.value for m in UserEventType)


# ---------------------------------------------------------------------------------- CLOB REST objects
class ClobToken(msgspec.Struct, gc=False):
    token_id: str
    outcome: str = ""
    price: Num = None
    winner: bool = False


class ClobMarket(msgspec.Struct, gc=False):
    """`GET /markets/{condition_id}` (the parts used: resolution)."""

    condition_id: str = ""
    closed: bool = False
    active: bool = True
    accepting_orders: bool = True
    tokens: list[ClobToken] = []
    minimum_tick_size: Num = None
    minimum_order_size: Num = None
    neg_risk: bool = False

    @property
    def winners(self) -> list[str]:
        return [t.token_id for t in self.tokens if t.winner]


# ---------------------------------------------------------------------------------- decoding
T = TypeVar("T")

_MARKET_FRAME = msgspec.json.Decoder(list[MarketEvent] | MarketEvent)
_USER_FRAME = msgspec.json.Decoder(list[UserEvent] | UserEvent)
_BOOKS = msgspec.json.Decoder(list[BookSnapshot])


def convert(obj: Any, typ: type[T], what: str = "") -> T:
    """One decoded JSON value (dict from `json.loads`, the SDK, a recording) as `typ`; WireError
    naming the field when it does not fit (`what` prefixes the message)."""
    try:
        return msgspec.convert(obj, typ)
    except msgspec.ValidationError as exc:
        raise WireError(f"{what or typ.__name__}: {exc}") from None


def convert_all(items: Iterable[Any], typ: type[T], what: str = "") -> tuple[list[T], list[str]]:
    """Each item as `typ`: (the ones that fit, one error line per one that does not)."""
    out: list[T] = []
    errors: list[str] = []
    for it in items:
        try:
            out.append(convert(it, typ, what))
        except WireError as exc:
            errors.append(str(exc))
    return out, errors


@dataclass(frozen=True, slots=True)
class Refused:
    """An event of a frame that could not be decoded: why, its `event_type` when it had a known
    one, and the raw object (only to find the tokens it names, for a targeted resync)."""

    reason: str
    kind: str | None = None
    raw: Any = None
    unknown: bool = False  # an event type we do not know (not an error of a known one)


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """A frame's events in order, each either decoded or `Refused`; `error` when the frame as a
    whole was unusable (not JSON, nested too deep, not an object or array)."""

    events: Sequence[Any]
    error: str | None = None


def _events(data: Any, typ: Any, known: frozenset[str], what: str) -> DecodedFrame:
    """Per-event decoding of a generically decoded frame (the slow, forgiving path)."""
    items = data if isinstance(data, list) else [data]
    out: list[Any] = []
    for ev in items:
        if not isinstance(ev, dict):
            out.append(Refused("event is not an object"))
            continue
        kind = ev.get("event_type")
        if not isinstance(kind, str) or kind not in known:
            out.append(Refused(f"unknown {what} event {str(kind)[:30]!r}", None, ev, unknown=True))
            continue
        try:
            out.append(msgspec.convert(ev, typ))
        except msgspec.ValidationError as exc:
            out.append(Refused(f"{kind}: {exc}", kind, ev))
    return DecodedFrame(out)


def _decode_frame(frame: str | bytes, fast: msgspec.json.Decoder[Any], typ: Any, known: frozenset[str],
                  what: str) -> DecodedFrame:
    if safejson.shallow(frame):
        try:
            got = fast.decode(frame)
            return DecodedFrame(got if isinstance(got, list) else (got,))
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass  # some event does not fit (or not JSON msgspec accepts): event by event below
    if isinstance(frame, (bytes, bytearray)):
        frame = bytes(frame).decode("utf-8", "replace")
    try:
        data = safejson.loads(frame)
    except (ValueError, RecursionError):
        return DecodedFrame((), f"not JSON: {frame[:60]!r}")
    return _events(data, typ, known, what)


def decode_market_frame(frame: str | bytes) -> DecodedFrame:
    """One market-channel frame (an event or an array): typed events, or `Refused` ones."""
    return _decode_frame(frame, _MARKET_FRAME, MarketEvent, MARKET_EVENT_TYPES, "market")


def decode_user_frame(frame: str | bytes) -> DecodedFrame:
    """One user-channel frame (an event or an array): `OrderEvent`/`TradeEvent`, or `Refused` ones."""
    return _decode_frame(frame, _USER_FRAME, UserEvent, USER_EVENT_TYPES, "user")


def decode_books(payload: str | bytes | Sequence[Any]) -> tuple[list[BookSnapshot], list[str]]:
    """REST `/books` (or a recording of it): JSON text or already-decoded objects → (books, errors)."""
    if isinstance(payload, (str, bytes)):
        if safejson.shallow(payload):
            try:
                return _BOOKS.decode(payload), []
            except (msgspec.ValidationError, msgspec.DecodeError):
                pass
        try:
            data = safejson.loads(payload)
        except (ValueError, RecursionError):
            return [], ["REST books: not JSON"]
        if not isinstance(data, list):
            return [], ["REST books: not a list"]
        payload = data
    return convert_all(payload, BookSnapshot, "REST book")


def to_builtins(obj: Any) -> Any:
    """A struct (or list of them) as plain JSON values again (recordings, tests)."""
    return msgspec.to_builtins(obj)
