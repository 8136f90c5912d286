"""The live-trading confirmation of the control panel (ui/controls.py), without a browser.

Real money starts only after a typed confirmation: `live`, or the wallet's last 4 hex digits
when there is a wallet. These tests pin what the confirmation accepts (exactly those words, for
any other text the button stays disabled and a forged click is refused), the account it names,
the refusals (no usable key, an engine running), and that arming by hand only arms (Start
trades) while only a confirmed hand-over starts the engine."""

from __future__ import annotations

import asyncio

from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from ui_helpers import hand_over, other_owner

from pmm_widgets.engine import Engine
from pmm_widgets.engine.lease import Lease
from pmm_widgets.ui.controls import ControlPanel

KEY = Account.create()
SUFFIX = KEY.address[-4:].lower()


def _with_key(s):
    return s.model_copy(update={"private_key": SecretStr(KEY.key.hex())})


def _api_key_only(s):
    return s.model_copy(update={"api_key": SecretStr("k"), "api_secret": SecretStr("s"),
                                "api_passphrase": SecretStr("p")})


def _prompt(panel: ControlPanel) -> str:
    return str(panel.live_box.children[0].value)


def _typed(panel: ControlPanel, text: str) -> bool:
    """Type `text` into the confirmation; True when the Confirm button is enabled."""
    panel.live_text.value = text
    return not panel.live_confirm.disabled


_TEXTS = st.one_of(st.text(max_size=8), st.sampled_from(["live", "LIVE", " live ", "liv", "lives", "yes", "",
                                                         SUFFIX, SUFFIX.upper(), f" {SUFFIX}\t", SUFFIX[:3],
                                                         KEY.address, "0x" + SUFFIX]))


def _check_confirmation(panel: ControlPanel, accepts: set[str], examples: int) -> None:
    """For any typed text: Confirm enabled, and a click arming live, iff the text is accepted;
    a refused click leaves the prompt open and the engine in paper."""
    engine = panel.engine

    @settings(max_examples=examples, deadline=None)
    @given(text=_TEXTS)
    def check(text: str) -> None:
        panel.mode.value = "paper"
        panel.mode.value = "live"
        assert panel.live_box.layout.display == "flex" and panel.live_confirm.disabled
        accepted = text.strip().lower() in accepts
        assert _typed(panel, text) is accepted
        panel._on_live_confirm(None)  # a click (forged when the button is disabled)
        assert engine.mode.value == ("live" if accepted else "paper")
        assert panel.live_box.layout.display == ("none" if accepted else "flex")

    check()


def test_with_a_wallet_only_live_or_its_last_4_hex_digits_confirm(settings):
    panel = ControlPanel(Engine(_with_key(settings)))
    _check_confirmation(panel, {"live", SUFFIX}, 150)


def test_an_api_key_account_has_no_wallet_digits_only_live_confirms(settings):
    """No private key, only the API-key trio: no wallet, so nothing but `live` (an empty text
    must never match an empty wallet suffix)."""
    panel = ControlPanel(Engine(_api_key_only(settings)))
    panel.mode.value = "live"
    assert "API-key account" in _prompt(panel) and "last 4 hex digits" not in _prompt(panel)
    _check_confirmation(panel, {"live"}, 100)


def test_the_prompt_names_the_wallet_and_opens_clean_each_time(settings):
    engine = Engine(_with_key(settings))
    panel = ControlPanel(engine)
    panel.mode.value = "live"
    assert KEY.address in _prompt(panel) and "last 4 hex digits" in _prompt(panel)
    assert "Trade real money" in _prompt(panel) and panel.live_confirm.description == "Confirm LIVE"
    assert _typed(panel, "live")
    panel.live_cancel.click()  # cancelled: nothing armed, the box and the text gone
    assert engine.mode.value == "paper" and panel.mode.value == "paper"
    assert panel.live_box.layout.display == "none" and panel.live_text.value == ""
    panel.mode.value = "live"  # asked again: the earlier text is not kept, the button disabled
    assert panel.live_text.value == "" and panel.live_confirm.disabled


def test_arming_by_hand_only_arms_start_is_still_needed(settings):
    engine = Engine(_with_key(settings))
    panel = ControlPanel(engine)
    starts: list[bool] = []
    panel.start_engine = lambda: starts.append(True)  # type: ignore[method-assign]
    panel.mode.value = "live"
    _typed(panel, SUFFIX.upper())
    panel.live_confirm.click()
    assert engine.mode.value == "live" and starts == []
    assert panel.live_box.layout.display == "none" and panel.live_text.value == ""
    assert "LIVE mode armed: press Start to trade" in panel.message.value
    panel.mode.value = "paper"  # disarm
    assert engine.mode.value == "paper" and "paper mode" in panel.message.value
    assert panel.live_box.layout.display == "none"


def test_a_key_that_is_not_a_key_is_refused_before_any_prompt(settings):
    engine = Engine(settings.model_copy(update={"private_key": SecretStr("0xnot-a-key")}))
    panel = ControlPanel(engine)
    panel.mode.value = "live"
    assert engine.mode.value == "paper" and panel.mode.value == "paper"
    assert panel.live_box.layout.display == "none"
    assert "refused: PMM_PRIVATE_KEY is not a valid key" in panel.message.value
    assert "not-a-key" not in panel.message.value  # never the key itself


def _other_owner(db_url: str) -> Lease:
    return other_owner(db_url, "paper")


async def test_a_running_engine_is_never_switched_to_live(settings, db_url):
    """A page attached to another engine (running) asks for live: refused, no prompt."""
    lease = _other_owner(db_url)
    engine = Engine(_with_key(settings))
    task = engine.start(attach_only=True)
    try:
        assert await engine.wait_role() == "attached" and engine.running
        panel = ControlPanel(engine)
        panel.mode.value = "live"
        assert engine.mode.value == "paper" and panel.mode.value == "paper"
        assert panel.live_box.layout.display == "none"
        assert "refused: stop the engine (KILL) before switching to live" in panel.message.value
    finally:
        await engine.stop()
        await asyncio.wait_for(task, 5)
        lease.db.dispose()


async def test_a_confirmation_typed_after_the_engine_started_is_refused(settings, db_url):
    """The prompt was open when an engine started on this page: the confirm must not switch it."""
    engine = Engine(_with_key(settings))
    panel = ControlPanel(engine)
    panel.mode.value = "live"
    _typed(panel, "live")
    lease = _other_owner(db_url)
    task = engine.start(attach_only=True)
    try:
        assert await engine.wait_role() == "attached"
        panel.live_confirm.click()
        assert engine.mode.value == "paper" and panel.mode.value == "paper"
        assert "refused: stop the engine before switching mode" in panel.message.value
        assert panel.live_box.layout.display == "none"
    finally:
        await engine.stop()
        await asyncio.wait_for(task, 5)
        lease.db.dispose()


async def _offered(settings, db_url: str, mode: str) -> tuple[Engine, ControlPanel, list[bool]]:
    """A page opened after a page of `mode` closed (its lease row marked for hand-over), its
    lease watched once; `start_engine` calls recorded (the list) instead of starting."""
    hand_over(db_url, mode)
    engine = Engine(settings)
    panel = ControlPanel(engine)
    starts: list[bool] = []
    panel.start_engine = lambda: starts.append(True)  # type: ignore[method-assign]
    await panel._watch_lease(now=True)
    return engine, panel, starts


async def test_arming_live_by_hand_replaces_a_pending_hand_over(settings, db_url):
    """The page offers a live hand-over; the operator instead arms live with the mode toggle:
    confirming that arms only (no start), as any arming by hand."""
    engine, panel, starts = await _offered(_with_key(settings), db_url, "live")
    assert panel.live_confirm.description == "Take over LIVE"
    panel.mode.value = "live"  # the toggle: arming by hand
    assert panel.live_confirm.description == "Confirm LIVE"
    _typed(panel, "live")
    panel.live_confirm.click()
    assert engine.mode.value == "live" and starts == []
    assert "LIVE mode armed" in panel.message.value


async def test_a_live_hand_over_taken_by_another_engine_is_withdrawn(settings, db_url):
    """While the offer waits for the typed confirmation another engine takes the lease: the
    offer disappears and this page only watches (attach-only), never starts an owner."""
    hand_over(db_url, "live")
    engine = Engine(_with_key(settings))
    panel = ControlPanel(engine)
    await panel._watch_lease(now=True)
    assert panel.live_box.layout.display == "flex"
    lease = _other_owner(db_url)
    try:
        await panel._watch_lease(now=True)
        assert panel.live_box.layout.display == "none" and panel.mode.value == "paper"
        assert await engine.wait_role() == "attached"  # watches the new owner
        _typed(panel, "live")
        panel._on_live_confirm(None)  # a click on the withdrawn offer changes nothing
        assert engine.mode.value == "paper" and engine.role == "attached"
    finally:
        await engine.stop()
        lease.db.dispose()


async def test_a_paper_hand_over_is_taken_at_once(settings, db_url):
    engine, panel, starts = await _offered(settings, db_url, "paper")
    assert starts == [True] and engine.mode.value == "paper" and panel.live_box.layout.display == "none"
    assert "took over the paper engine" in panel.message.value


def test_backing_out_to_paper_drops_a_confirmation_already_typed(settings):
    """The operator opens the live prompt, types the word, then clicks back to paper: the
    (now hidden) Confirm button must not stay armed, or a later click event reaching it (a
    stale or forged comm message) would arm live without a new confirmation."""
    engine = Engine(_with_key(settings))
    panel = ControlPanel(engine)
    panel.mode.value = "live"
    assert _typed(panel, "live")
    panel.mode.value = "paper"
    assert panel.live_box.layout.display == "none"
    assert panel.live_text.value == "" and panel.live_confirm.disabled
    panel.live_confirm.click()
    assert engine.mode.value == "paper" and panel.mode.value == "paper"
    panel.mode.value = "live"  # asked again: nothing carried over
    assert panel.live_text.value == "" and panel.live_confirm.disabled


async def test_a_confirmed_hand_over_says_it_took_over_not_merely_armed(settings, db_url):
    engine, panel, starts = await _offered(_with_key(settings), db_url, "live")
    _typed(panel, "live")
    panel.live_confirm.click()
    assert starts == [True] and engine.mode.value == "live"
    assert "took over the live engine of a page that closed or reloaded" in panel.message.value
    assert "armed" not in panel.message.value


async def test_a_live_hand_over_without_credentials_is_refused_not_offered(settings, db_url):
    _, panel, starts = await _offered(settings, db_url, "live")  # no key, no API trio here
    assert starts == [] and panel.live_box.layout.display == "none"
    assert "refused: live needs credentials" in panel.message.value
    assert "pending hand-over" not in panel.message.value


def test_a_click_on_the_hidden_prompts_confirm_button_never_arms_live_even_with_the_word_in_it(settings):
    """Defence in depth beside the clearing above: whatever the text holds, a Confirm click while
    the prompt is not shown (a stale or forged comm message) is refused."""
    engine = Engine(_with_key(settings))
    panel = ControlPanel(engine)
    panel.mode.value = "live"
    assert _typed(panel, "live")
    panel.live_box.layout.display = "none"  # hidden by any other path, the word still typed
    panel.live_confirm.click()
    assert engine.mode.value == "paper" and "refused" in panel.message.value
