"""Configuration: start-up `Settings` from the environment / `.env`, and the live `Params`.

Why two objects: settings such as the DB URL or the venue are fixed for a process, while the
parameters a trader tunes (α, fill knobs, sizes, limits) change while the engine runs. Each
parameter is defined once, in `ParamFields`; `Params` and `Settings` both inherit it, so every
parameter's starting value is a `PMM_*` setting and one pydantic rule validates it, whether the
value comes from an env var, `.env`, a CLI flag, a notebook assignment or a slider: a bad value is
refused in one place with one message.

Secrets are `SecretStr`: they print as '**********' in every repr, log line and error.
"""

from __future__ import annotations

import difflib
import enum
import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import PmmError

ENV_PREFIX = "PMM_"

# built-in strategies by name (pmm_widgets.strategy.registry builds them); PMM_STRATEGY picks one
STRATEGY_NAMES: tuple[str, ...] = ("spread", "as", "microprice", "regime", "rewards")

POLYMARKET_GAMMA_URL = "https://gamma-api.polymarket.com"
POLYMARKET_CLOB_URL = "https://clob.polymarket.com"
POLYMARKET_CLOB_WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws"


SEED_MAX = 2**63 - 1  # a seed's range is 0 .. SEED_MAX: numpy's generators take no negative one, rows store it as a BIGINT


class ConfigError(PmmError):
    """A bad setting. `str()` is the one line shown to the user (variable, value, what is accepted)."""


class Venue(str, enum.Enum):
    POLYMARKET = "polymarket"
    SANDBOX = "sandbox"


class ParamFields(BaseModel):
    """The definition of every live parameter: type, default, bounds and description, once.

    `Params` (the live object) and `Settings` (its starting values from `PMM_<NAME>`, `.env`,
    `--set`) both inherit these fields, so a parameter added here is settable everywhere and
    validated by the same rule; `env.example` lists it (a test checks).
    """

    # strategy
    alpha: float = Field(1.5, gt=0, le=20, description="half-spread multiplier (conservative default 1.5)")
    quote_size: Decimal = Field(Decimal(10), gt=0, le=100_000, description="shares per quote (raised to min size)")
    requote_ticks: int = Field(1, ge=0, le=100, description="requote only when the wanted price moved this many ticks")
    skew: float = Field(0.5, ge=0, le=5, description="inventory skew: half-spreads moved at the inventory limit")
    vol_halflife_sec: float = Field(60.0, gt=0, le=86_400, description="EWMA half-life of mid-change volatility")
    quoting_paused: bool = Field(False, description="keep running, but hold no quotes (true: start paused)")
    strategy: str = Field("spread", description="default quoting strategy: " + ", ".join(STRATEGY_NAMES))
    # Avellaneda-Stoikov (strategy "as")
    as_gamma: float = Field(1.0, gt=0, le=100, description="risk aversion, per lot of quote_size")
    as_kappa: float = Field(100.0, gt=0, le=100_000, description="order-arrival decay per unit of price")
    as_horizon_sec: float = Field(300.0, gt=0, le=30 * 86_400, description="inventory horizon (capped by time to end)")
    # microprice (strategy "microprice")
    micro_levels: int = Field(3, ge=1, le=20, description="book levels in the size-weighted imbalance")
    micro_toxicity_mult: float = Field(1.0, ge=0, le=50, description="half-spread widening per tick of adverse markout")
    # regime machine (strategy "regime", wrapping regime_base)
    regime_base: str = Field("spread", description="strategy the regime machine wraps")
    regime_wide_vol: float = Field(0.03, gt=0, le=1, description="vol (price move over the vol horizon) that widens")
    regime_reduce_vol: float = Field(0.06, gt=0, le=1, description="vol that turns reduce-only")
    regime_halt_vol: float = Field(0.10, gt=0, le=1, description="vol that halts quoting")
    regime_wide_mult: float = Field(2.0, ge=1, le=20, description="alpha multiplier in the wide regime")
    regime_wide_tt_per_min: float = Field(1.0, gt=0, le=1_000, description="trade-throughs/min that widen")
    regime_reduce_tt_per_min: float = Field(3.0, gt=0, le=1_000, description="trade-throughs/min that turn reduce-only")
    regime_reduce_before_end_min: float = Field(60.0, ge=0, le=525_600, description="reduce-only this long before end")
    regime_halt_before_end_min: float = Field(10.0, ge=0, le=525_600, description="halt this long before end")
    regime_cooldown_sec: float = Field(60.0, ge=0, le=86_400, description="calm time before stepping down a regime")
    # rewards band (strategy "rewards")
    rewards_band_frac: float = Field(0.5, gt=0, lt=1, description="keep each side within this fraction of the reward max spread")
    # paper fill model
    paper_fill_model: Literal["intensity", "queue", "prob_queue"] = Field(
        "intensity", description="paper fill model: intensity (Poisson), queue or prob_queue (queue position)")
    paper_queue_func: Literal["power", "log"] = Field("power", description="prob_queue: how a cancel's chance of being ahead of us grows with the size ahead")
    paper_queue_power: float = Field(2.0, gt=0, le=20, description="prob_queue: n of the power function x**n")
    paper_fill_intensity: float = Field(1.0, ge=0, le=1_000, description="fills/min for a quote at the touch")
    paper_latent_intensity: float = Field(0.0, ge=0, le=1_000, description="queue models: fills/min, for a quote at the public touch, of flow the public tape cannot show (it trades only because our order is there); decays behind the touch like the intensity model; 0: off")
    paper_spread_k: float = Field(100.0, ge=0, le=10_000, description="decay of fill rate per unit of price away from the touch")
    paper_full_fill_prob: float = Field(0.3, ge=0, le=1, description="probability that a fill takes the whole rest")
    paper_partial_beta_a: float = Field(2.0, gt=0, le=1_000, description="partial fill fraction ~ Beta(a, b): a")
    paper_partial_beta_b: float = Field(5.0, gt=0, le=1_000, description="partial fill fraction ~ Beta(a, b): b")
    paper_partial_max_frac: float = Field(0.8, gt=0, le=1, description="most of the remaining size one partial takes")
    # calibration
    target_fills_per_min: float = Field(1.0, ge=0, le=10_000, description="per market, both tokens together")
    calib_min_mult: float = Field(0.5, gt=0, le=1, description="calibration: lowest multiplier of alpha per market")
    calib_max_mult: float = Field(4.0, ge=1, le=100, description="calibration: highest multiplier of alpha per market")
    # risk
    # Every limit has an upper bound (`limit_bounds()`, documented in env.example and the README): a
    # limit is a promise to the operator, and a forged or fat-fingered `set_params` of 1e15 must be
    # refused like any other bad value, not turn the limits off.
    max_inventory_shares: Decimal = Field(Decimal(500), gt=0, le=1_000_000, description="per token, absolute")
    max_inventory_usd: Decimal = Field(Decimal(250), gt=0, le=100_000, description="per market, at mid")
    max_total_inventory_usd: Decimal = Field(Decimal(5_000), gt=0, le=1_000_000, description="all markets, at mid")
    max_event_usd: Decimal = Field(Decimal(1_000), gt=0, le=1_000_000, description="inventory per neg-risk event, at mid")
    stop_before_end_min: float = Field(10.0, ge=0, le=525_600, description="stop quoting this long before end")
    rewards_mode: Literal["off", "fit"] = Field("off", description="fit: keep quotes inside the reward band")
    max_loss_per_market_usd: Decimal = Field(Decimal(50), gt=0, le=100_000, description="stop quoting a market after this loss")
    max_daily_loss_usd: Decimal = Field(Decimal(500), gt=0, le=1_000_000, description="kill switch: daily loss that stops all")
    max_actions_per_min: int = Field(1_200, gt=0, le=6_000, description="orders + cancels per minute (cancel-rate cap)")
    max_open_orders: int = Field(400, gt=0, le=5_000, description="open orders over all markets")
    price_band: Decimal = Field(Decimal("0.10"), gt=0, lt=1, description="never quote further than this from mid")
    anomaly_jump: Decimal = Field(Decimal("0.10"), gt=0, lt=1, description="mid jump that pulls a market's quotes")
    anomaly_window_sec: float = Field(10.0, gt=0, le=3_600, description="window (s) of the mid jump check")
    anomaly_cooldown_sec: float = Field(60.0, ge=0, le=86_400, description="a market pulled on a jump waits this long (s)")

    @field_validator("strategy", "regime_base")
    @classmethod
    def _strategy_name(cls, v: str) -> str:
        if v not in STRATEGY_NAMES:
            raise ValueError("expected one of " + ", ".join(STRATEGY_NAMES))
        return v


class Params(ParamFields):
    """Live, validated trading parameters. The engine re-reads them at every quote cycle.

    Assigning an attribute validates it (`validate_assignment`), so `engine.params.alpha = -1`
    from a notebook raises exactly as `PMM_ALPHA=-1` does at start-up.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    @model_validator(mode="after")
    def _calib_bounds(self) -> Params:
        if self.calib_min_mult > self.calib_max_mult:
            raise ValueError("calib_min_mult must be <= calib_max_mult")
        if self.regime_base == "regime":
            raise ValueError("regime_base=regime: the regime machine cannot wrap itself")
        if not self.regime_wide_vol <= self.regime_reduce_vol <= self.regime_halt_vol:
            raise ValueError(f"regime vols must satisfy wide <= reduce <= halt (regime_wide_vol={self.regime_wide_vol}, "
                             f"regime_reduce_vol={self.regime_reduce_vol}, regime_halt_vol={self.regime_halt_vol})")
        if self.regime_wide_tt_per_min > self.regime_reduce_tt_per_min:
            raise ValueError(f"regime_wide_tt_per_min={self.regime_wide_tt_per_min} must be <= "
                             f"regime_reduce_tt_per_min={self.regime_reduce_tt_per_min}")
        if self.regime_halt_before_end_min > self.regime_reduce_before_end_min:
            raise ValueError(f"regime_halt_before_end_min={self.regime_halt_before_end_min} must be <= "
                             f"regime_reduce_before_end_min={self.regime_reduce_before_end_min}")
        return self

    def update(self, **changes: Any) -> Params:
        """Apply several changes atomically: all validate, or none is applied."""
        merged = self.model_dump()
        merged.update(changes)
        fresh = Params.model_validate(merged)  # raises ValidationError naming the field
        for k in changes:
            object.__setattr__(self, k, getattr(fresh, k))
        return self


PARAM_FIELDS = tuple(Params.model_fields)
# what a per-market override (engine.set_strategy(market, name, **params)) may change: the
# strategy's own knobs, never a risk limit
STRATEGY_PARAM_FIELDS: tuple[str, ...] = ("alpha", "quote_size", "skew") + tuple(
    f for f in PARAM_FIELDS if f.startswith(("as_", "micro_", "regime_", "rewards_band")))


def field_bounds(name: str) -> tuple[Any, Any]:
    """(lower, upper) of a parameter, read from its `ParamFields` rule (gt/ge, lt/le; None: open)."""
    lo = hi = None
    for m in Params.model_fields[name].metadata:
        for attr in ("gt", "ge"):
            lo = getattr(m, attr, None) if getattr(m, attr, None) is not None else lo
        for attr in ("lt", "le"):
            hi = getattr(m, attr, None) if getattr(m, attr, None) is not None else hi
    return lo, hi


def limit_bounds() -> dict[str, tuple[Any, Any]]:
    """(lower, upper) of every `max_*` risk limit, read from the Params rules (docs and tests)."""
    return {name: field_bounds(name) for name in PARAM_FIELDS if name.startswith("max_")}


# secp256k1 group order: a private key is an integer in [1, N-1]
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class Settings(ParamFields, BaseSettings):
    """Process-wide settings, plus the starting values of every live parameter (the fields of
    `ParamFields`, defined once there). Every field maps to `PMM_<NAME>` and is listed in
    env.example."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    venue: Venue = Venue.POLYMARKET
    gamma_url: str = POLYMARKET_GAMMA_URL
    clob_url: str = POLYMARKET_CLOB_URL
    clob_ws_url: str = POLYMARKET_CLOB_WS_URL
    db_url: str = "sqlite:///pmm.db"

    universe_size: int = Field(50, ge=1, le=500)
    universe_refresh_sec: float = Field(300.0, ge=5)
    universe_rank: Literal["liquidity", "rewards"] = "liquidity"
    quote_refresh_sec: float = Field(3.0, gt=0, le=3_600)
    dashboard_refresh_sec: float = Field(1.0, gt=0, le=60)
    stale_sec: float = Field(30.0, gt=0)
    record_book_sec: float = Field(5.0, gt=0)
    pnl_sec: float = Field(10.0, gt=0)
    writer_flush_sec: float = Field(0.5, gt=0, le=1.0)
    writer_max_pending: int = Field(200_000, ge=1_000, le=1_000_000)
    writer_max_lag_sec: float = Field(30.0, gt=0, le=3_600)
    disconnect_cancel_sec: float = Field(10.0, gt=0)
    deadman_sec: float = Field(120.0, gt=0)
    # ≥ 1.5 × (http_timeout_sec + 0.5): the halt's cancel budget (2/3 of it, less 0.5 s) fits one venue call
    lease_ttl_sec: float = Field(16.0, ge=3)
    http_timeout_sec: float = Field(10.0, gt=0)
    # transient venue errors (issue 17): retries, deadlines, circuit breaker
    http_deadline_sec: float = Field(30.0, gt=0, le=600, description="total deadline of one HTTP call, retries included")
    retry_after_max_sec: float = Field(5.0, ge=0, le=300, description="cap on a venue's Retry-After")
    venue_retries: int = Field(3, ge=0, le=10, description="extra attempts of a transient venue failure")
    venue_backoff_sec: float = Field(0.2, gt=0, le=60, description="first backoff step (full jitter, doubling)")
    venue_backoff_cap_sec: float = Field(2.0, gt=0, le=300, description="longest backoff step")
    circuit_errors: int = Field(3, ge=1, le=1_000, description="failing cycles in a row that open the circuit")
    circuit_probe_sec: float = Field(5.0, gt=0, le=3_600, description="while open: probe the venue this often")

    sandbox_markets: int = Field(80, ge=1, le=2_000)
    sandbox_seed: int = Field(7, ge=0, le=SEED_MAX)
    sandbox_speed: float = Field(1.0, gt=0, le=1_000)
    sandbox_resolve_every_sec: float = Field(0.0, ge=0)  # 0: off
    # the embedded sandbox in its own process: auto (from 150 markets, universe or sandbox), on, off
    sandbox_process: Literal["auto", "on", "off"] = "auto"

    # secrets (live only)
    private_key: SecretStr | None = None
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_passphrase: SecretStr | None = None
    funder: str | None = None
    signature_type: int = Field(0, ge=0, le=3)
    chain_id: int = 137
    adopt_unknown: bool = False  # live reconcile: adopt open orders we did not place (else cancel them)
    retain_days: float = Field(7.0, ge=0, allow_inf_nan=False)  # retention.RETAINED_TABLES kept this long (0: forever)
    prune_sec: float = Field(300.0, ge=1)  # how often the engine prunes (small batches, worker thread)
    fast_orders: bool = True  # live: project signer + async batched order entry (False: the SDK for everything)
    max_inflight_requests: int = Field(8, ge=1, le=64)  # live: order requests in flight at once
    # quote cycle: re-decide only markets whose decision inputs changed (exactly the full cycle's decisions)
    cycle_incremental: bool = True
    # engine runs (paper/live/dry-run): a quote cycle yields to the event loop whenever it has held it
    # this long (the feed is held meanwhile and applied after the cycle, in order); 0: never yields
    cycle_yield_ms: float = Field(5.0, ge=0)
    # gc.freeze() after the set-up (and after the 5th cycle); while quoting, full collections only once a
    # minute between two cycles (issue 12: gen-2 pauses of 0.3-0.9 s stalled the loop); False: GC untouched
    gc_freeze: bool = True

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # full-fidelity recording of the venue's data (Parquet, see store/recording.py)
    record: Literal["off", "on"] | None = None  # unset: on for `pmm run` and the operator app, off for the API and tests
    record_dir: str = "./data/recordings"
    # the recordings' size budget, oldest hours deleted first (20 GB: ≈ 2 weeks of 50 sandbox markets;
    # an unattended engine used to fill its disk); 0: no budget (at most a petabyte: not inf)
    record_max_gb: float = Field(20.0, ge=0, le=1e6)
    # below this many GB free on its disk, recording pauses (a gap) until there is room: the DB lives there too
    record_min_free_gb: float = Field(2.0, ge=0, le=1e6)
    # a new part file every this many seconds (the open part is unreadable; a crash loses it); 0: hourly; else >= 1
    record_rotate_sec: float = Field(60.0, ge=0, le=3600)

    # paper exchange latency: fixed for a run (the live parameters are inherited from ParamFields)
    paper_latency_ms: float = Field(150.0, ge=0, le=60_000, description="paper: order round-trip time (ms); half each way")
    # paper: a file of measured order round trips (ms, one a line); when set, each delay is drawn from it
    paper_latency_file: str = ""
    # live: where the engine writes the venue's measured order round trips (ms, one a line) when it
    # stops, in the form PMM_PAPER_LATENCY_FILE reads (the last live run's; "{venue}" becomes the
    # venue's name, so a sandbox run never overwrites Polymarket's samples; "" = not written)
    live_rtt_file: str = "./data/live-order-rtt-ms-{venue}.txt"

    @field_validator("record", mode="before")
    @classmethod
    def _record(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v.strip().lower() if isinstance(v, str) else v

    @field_validator("record_rotate_sec")
    @classmethod
    def _record_rotate_sec(cls, v: float) -> float:
        if 0 < v < 1:  # a part file per channel per interval, the writer waking 4 times an interval: a core busy
            raise ValueError("below 1 s: expected 0 (one file per hour) or at least 1 s between parts, such as 60")
        return v

    @field_validator("record_dir")
    @classmethod
    def _record_dir(cls, v: str) -> str:
        if not v.strip():  # it used to record into the current directory (whose folders the budget then deleted)
            raise ValueError("empty: expected a directory for the recordings, such as ./data/recordings")
        return v

    @field_validator("db_url")
    @classmethod
    def _db_url(cls, v: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(v)
        except (ArgumentError, ValueError):  # (a port that is no number: ValueError)
            raise ValueError(
                "expected an SQLAlchemy URL such as sqlite:///pmm.db or postgresql+psycopg://user@host/db"
            ) from None
        return v

    @field_validator("private_key")
    @classmethod
    def _private_key(cls, v: SecretStr | None) -> SecretStr | None:
        """32 bytes of hex (0x optional), a valid secp256k1 key; empty means unset. The message
        never echoes the value (format_validation_error masks it too)."""
        if v is None:
            return None
        raw = v.get_secret_value().strip()
        if not raw:
            return None
        digits = raw[2:] if raw[:2].lower() == "0x" else raw
        if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError(f"expected 64 hex digits (32 bytes, optional 0x prefix), got {len(digits)} characters")
        if not 0 < int(digits, 16) < _SECP256K1_N:
            raise ValueError("not a valid secp256k1 private key (out of range)")
        return SecretStr(raw)

    @field_validator("gamma_url", "clob_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return v.rstrip("/")

    @field_validator("clob_ws_url")
    @classmethod
    def _ws_url(cls, v: str) -> str:
        if not v.startswith(("ws://", "wss://")):
            raise ValueError("expected a ws:// or wss:// URL")
        return v.rstrip("/")

    def params(self) -> Params:
        """The live parameters' starting values, validated by Params' own rules."""
        values = {k: getattr(self, k) for k in PARAM_FIELDS}
        try:
            return Params(**values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, env=True)) from None

    @property
    def has_l2_creds(self) -> bool:
        return all(s is not None and s.get_secret_value() for s in (self.api_key, self.api_secret, self.api_passphrase))

    @property
    def has_private_key(self) -> bool:
        return self.private_key is not None and bool(self.private_key.get_secret_value())


# the process-wide settings that are no live parameter, in declaration order (env.example's order)
SETTING_FIELDS: tuple[str, ...] = tuple(n for n in Settings.model_fields if n not in PARAM_FIELDS)


_URL_PASSWORD = re.compile(r"(://[^/@:]*:).*@")  # user:PASSWORD@ in a URL (to its last @: more hidden, never less)


def format_validation_error(exc: ValidationError, env: bool = False) -> str:
    """One line: the first failing field as its env var (or parameter) name, the bad value, the rule."""
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()) if x != "__root__") or "value"
    name = f"{ENV_PREFIX}{loc.upper()}" if env else loc
    bad = err.get("input")
    if loc.lower() in {"private_key", "api_key", "api_secret", "api_passphrase"}:
        bad = "***"
    elif isinstance(bad, str):  # a URL's password hidden by hand (a DB URL that does not parse, or any other)
        bad = _URL_PASSWORD.sub(r"\1***@", bad)
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    if not err.get("loc"):  # a rule across several fields: the message names them
        return msg
    return f"{name}={bad!s}: {msg}" if bad is not None and not isinstance(bad, dict) else f"{name}: {msg}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from env/.env (+ overrides) and validate the live parameters too.

    Raises ConfigError with a single user-facing line; callers (CLI, runner) print it and exit 2.
    An override that is no setting or parameter (`load_settings(alhpa=2)` in a notebook) is refused
    with the closest name, not silently ignored (env and .env names are warned about instead).
    """
    for name in overrides:
        if not name.startswith("_") and name not in Settings.model_fields:
            close = difflib.get_close_matches(name, list(Settings.model_fields), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else " (see env.example for every setting)"
            raise ConfigError(f"{name}: not a setting or parameter{hint}")
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, env=True)) from None
    settings.params()  # validates PMM_ALPHA & co with the live rules
    return settings
