"""Native-speed CLOB V2 order signing: the key parsed once, the EIP-712 digest built directly.

Why it exists: signing one order through py-clob-client-v2 re-parses the private key, builds a
generic typed-data dict, runs eth_account's generic EIP-712 encoder and (without coincurve)
pure-Python ECDSA: ~3.9 ms per order, holding the GIL against the feed loop. Here the key is a
`coincurve.PrivateKey` made once, the two domain separators (standard and neg-risk exchange)
are precomputed, and an order's struct hash is eleven 32-byte words and two keccaks; coincurve
(libsecp256k1, RFC 6979 deterministic nonces, low-s) signs in C with the GIL released.

What it reproduces, read in the SDK 1.2.1 source (the SDK is the reference, and where the
shared notes and the SDK disagree the SDK wins):
- amounts: `OrderBuilder.get_order_amounts` with `ROUNDING_CONFIG[tick]`, after `create_order`'s
  own `round_normal(price, rc.price)`; we call the SDK's functions (float arithmetic included),
  so maker/taker amounts are the SDK's by construction;
- the struct `Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256
  makerAmount,uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32
  metadata,bytes32 builder)`, domain `{"Polymarket CTF Exchange", "2", chainId, exchange}` with
  `exchange_v2` or `neg_risk_exchange_v2` from `get_contract_config(chain_id)`;
- `maker` = the funder (default the signer EOA), `signer` = the EOA for signature types 0-2 and
  the funder for type 3 (POLY_1271); `expiration` is sent but not signed;
- types 0-2: the 65-byte `r||s||v` (v = 27 + recovery id) over the EIP-712 digest; type 3: the
  ERC-7739 `TypedDataSign` wrapping (`DepositWallet` domain) followed by the app domain
  separator, the contents hash, the type string and its length, as `_build_poly_1271_order_signature`;
- the order id the venue answers with = the EIP-712 digest (`build_order_hash`), for all types;
- salt `int(random() * now_ms)` and timestamp `now_ms` as strings, like `generate_order_salt`.
Only V2 (domain version "2") is built: V1 orders no longer work, and V3 (position_id) is not
used by this project. `tests/venue/test_signer.py` proves byte identity with the SDK.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..domain import Side
from ..errors import PmmError

try:
    from Crypto.Hash import keccak as _pc_keccak

    def keccak(data: bytes) -> bytes:
        return _pc_keccak.new(digest_bits=256, data=data).digest()
except ImportError:  # pragma: no cover - pycryptodome is an eth-account dependency
    from eth_utils.crypto import keccak as _eu_keccak

    def keccak(data: bytes) -> bytes:
        return bytes(_eu_keccak(data))


ORDER_TYPE_STRING = (
    "Order(uint256 salt,address maker,address signer,uint256 tokenId,"
    "uint256 makerAmount,uint256 takerAmount,uint8 side,uint8 signatureType,"
    "uint256 timestamp,bytes32 metadata,bytes32 builder)"
)
SOLADY_TYPE_STRING = ("TypedDataSign(Order contents,string name,string version,uint256 chainId,"
                      "address verifyingContract,bytes32 salt)" + ORDER_TYPE_STRING)
DOMAIN_TYPE_STRING = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
DOMAIN_NAME = "Polymarket CTF Exchange"
DOMAIN_VERSION = "2"
BYTES32_ZERO = "0x" + "00" * 32

ORDER_TYPE_HASH = keccak(ORDER_TYPE_STRING.encode())
SOLADY_TYPE_HASH = keccak(SOLADY_TYPE_STRING.encode())
DOMAIN_TYPE_HASH = keccak(DOMAIN_TYPE_STRING.encode())
_DW_NAME_HASH = keccak(b"DepositWallet")
_DW_VERSION_HASH = keccak(b"1")
_ZERO32 = bytes(32)
_POLY_1271 = 3
_TYPE_TAIL = ORDER_TYPE_STRING.encode().hex() + len(ORDER_TYPE_STRING).to_bytes(2, "big").hex()


class SignerError(PmmError, ValueError):
    """The order cannot be signed (bad key, unsupported tick size or signature type)."""


def _u256(v: int) -> bytes:
    return v.to_bytes(32, "big")


def _addr(a: str) -> bytes:
    raw = bytes.fromhex(a[2:] if a[:2] in ("0x", "0X") else a)
    if len(raw) != 20:
        raise SignerError(f"not an address: {a[:10]}...")
    return bytes(12) + raw


def _b32(h: str) -> bytes:
    return bytes.fromhex(h.replace("0x", "").zfill(64))


def default_salt() -> int:
    """`generate_order_salt()` of the SDK: int(random() * now in ms)."""
    return int(random.random() * (time.time_ns() // 1_000_000))


@dataclass(frozen=True, slots=True)
class SignedOrder:
    """One signed order: `order_id` is the venue's order hash, `body` the POST body's "order"
    object exactly as `order_to_json_v2` builds it (salt a JSON number, amounts strings)."""

    order_id: str
    body: dict[str, Any]

    @property
    def signature(self) -> str:
        return str(self.body["signature"])


class OrderSigner:
    """Signs CLOB V2 limit orders for one wallet (one key parse, precomputed domains)."""

    def __init__(self, private_key: str, chain_id: int, signature_type: int = 0, funder: str | None = None,
                 salt: Callable[[], int] = default_salt) -> None:
        import coincurve
        from eth_utils.address import to_checksum_address
        from py_clob_client_v2.config import get_contract_config

        if signature_type not in (0, 1, 2, 3):
            raise SignerError(f"unsupported signature type {signature_type}")
        try:
            raw = bytes.fromhex(private_key[2:] if private_key[:2] in ("0x", "0X") else private_key)
            if len(raw) != 32:
                raise ValueError
            self._key = coincurve.PrivateKey(raw)
        except (ValueError, TypeError):
            raise SignerError("the private key is not a 32-byte hex secp256k1 key") from None
        pub = self._key.public_key.format(compressed=False)[1:]
        self.address: str = to_checksum_address(keccak(pub)[-20:])
        self.chain_id = chain_id
        self.signature_type = signature_type
        self.funder: str = funder if funder is not None else self.address
        self.order_signer: str = self.funder if signature_type == _POLY_1271 else self.address
        self._maker_w = _addr(self.funder)
        self._signer_w = _addr(self.order_signer)
        self._sigtype_w = _u256(signature_type)
        self._salt = salt
        cfg = get_contract_config(chain_id)
        self.exchanges = {False: cfg.exchange_v2, True: cfg.neg_risk_exchange_v2}
        self._domain = {neg: keccak(DOMAIN_TYPE_HASH + keccak(DOMAIN_NAME.encode()) + keccak(DOMAIN_VERSION.encode())
                                    + _u256(chain_id) + _addr(ex))
                        for neg, ex in self.exchanges.items()}
        self._dw_tail = _DW_NAME_HASH + _DW_VERSION_HASH + _u256(chain_id) + self._signer_w + _ZERO32

    # ------------------------------------------------------------------ amounts (the SDK's)
    @staticmethod
    def amounts(side: Side, price: Decimal | float, size: Decimal | float, tick: Decimal | str) -> tuple[int, int]:
        """(makerAmount, takerAmount) in 6-dp base units, computed by the SDK's own functions."""
        from py_clob_client_v2.order_builder.builder import (
            ROUNDING_CONFIG,
            OrderBuilder,
        )
        from py_clob_client_v2.order_builder.helpers import round_normal

        ts = tick if isinstance(tick, str) else format(tick.normalize(), "f")
        rc = ROUNDING_CONFIG.get(ts)
        if rc is None:
            raise SignerError(f"unsupported tick size {ts}")
        p = round_normal(float(price), rc.price)
        _, maker, taker = OrderBuilder.get_order_amounts(None, side.value, float(size), p, rc)
        return maker, taker

    # ------------------------------------------------------------------ signing
    def sign(self, token_id: str, side: Side, price: Decimal | float, size: Decimal | float, tick: Decimal | str,
             neg_risk: bool, *, salt: int | None = None, timestamp_ms: int | None = None) -> SignedOrder:
        maker_amt, taker_amt = self.amounts(side, price, size, tick)
        return self.sign_amounts(token_id, side, maker_amt, taker_amt, neg_risk, salt=salt, timestamp_ms=timestamp_ms)

    def sign_amounts(self, token_id: str, side: Side, maker_amount: int, taker_amount: int, neg_risk: bool, *,
                     salt: int | None = None, timestamp_ms: int | None = None,
                     metadata: str = BYTES32_ZERO, builder: str = BYTES32_ZERO) -> SignedOrder:
        s = self._salt() if salt is None else salt
        ts = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
        side_i = 0 if side is Side.BUY else 1
        struct = keccak(ORDER_TYPE_HASH + _u256(s) + self._maker_w + self._signer_w + _u256(int(token_id))
                        + _u256(maker_amount) + _u256(taker_amount) + _u256(side_i) + self._sigtype_w
                        + _u256(ts) + _b32(metadata) + _b32(builder))
        domain = self._domain[bool(neg_risk)]
        digest = keccak(b"\x19\x01" + domain + struct)
        if self.signature_type == _POLY_1271:
            wrapped = keccak(SOLADY_TYPE_HASH + struct + self._dw_tail)
            inner = self._sign_digest(keccak(b"\x19\x01" + domain + wrapped))
            signature = "0x" + inner.hex() + domain.hex() + struct.hex() + _TYPE_TAIL
        else:
            signature = "0x" + self._sign_digest(digest).hex()
        body = {
            "salt": s, "maker": self.funder, "signer": self.order_signer, "tokenId": str(token_id),
            "makerAmount": str(maker_amount), "takerAmount": str(taker_amount), "side": side.value,
            "expiration": "0", "signatureType": self.signature_type, "timestamp": str(ts),
            "metadata": metadata, "builder": builder, "signature": signature,
        }
        return SignedOrder("0x" + digest.hex(), body)

    def _sign_digest(self, digest: bytes) -> bytes:
        sig = self._key.sign_recoverable(digest, hasher=None)  # r(32) s(32) recid(1)
        return sig[:64] + bytes((sig[64] + 27,))
