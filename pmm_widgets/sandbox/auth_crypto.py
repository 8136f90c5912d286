"""The sandbox's signature checks: L1 (ClobAuth EIP-712), L2 (HMAC), order EIP-712 and order hash.

Why an independent implementation: the sandbox must reject exactly what the real CLOB rejects,
so it recomputes every signature from the wire values with eth_account's generic EIP-712
encoder instead of reusing the SDK's signing code. A test that the SDK's orders verify here is
then a real cross-check of both sides (the SDK's order hash must equal our `order_hash`).

Credentials are deterministic per (address, nonce) under a fixed sandbox secret, as the real
`derive-api-key` is: keys created against one sandbox process stay valid in the next one (each
`pmm ... --venue sandbox` process embeds its own sandbox). `derive-api-key` answers only a key
created with `POST /auth/api-key` in this process, as the venue answers only a created one, and a
second `POST /auth/api-key` for the same (address, nonce) is the venue's 400 `Could not create api key`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils.address import to_checksum_address

CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"
_SANDBOX_KEY_SECRET = b"pmm-widgets sandbox api-key derivation v1"

# CLOB V2 exchanges (py_clob_client_v2.config, chain 137 and 80002 share them)
EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"

_ORDER_TYPES = [
    {"name": "salt", "type": "uint256"},
    {"name": "maker", "type": "address"},
    {"name": "signer", "type": "address"},
    {"name": "tokenId", "type": "uint256"},
    {"name": "makerAmount", "type": "uint256"},
    {"name": "takerAmount", "type": "uint256"},
    {"name": "side", "type": "uint8"},
    {"name": "signatureType", "type": "uint8"},
    {"name": "timestamp", "type": "uint256"},
    {"name": "metadata", "type": "bytes32"},
    {"name": "builder", "type": "bytes32"},
]
_DOMAIN_TYPES = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


@dataclass(frozen=True)
class SandboxCreds:
    address: str  # checksummed EOA the key is bound to
    nonce: int
    api_key: str
    secret: str  # urlsafe base64
    passphrase: str


def derive_creds(address: str, nonce: int) -> SandboxCreds:
    """Deterministic L2 credentials of (address, nonce)."""
    addr = to_checksum_address(address)
    seed = hmac.new(_SANDBOX_KEY_SECRET, f"{addr.lower()}:{nonce}".encode(), hashlib.sha256).digest()
    more = hashlib.sha256(seed + b"secret").digest()
    return SandboxCreds(
        address=addr,
        nonce=nonce,
        api_key=str(uuid.UUID(bytes=seed[:16], version=4)),
        secret=base64.urlsafe_b64encode(more).decode(),
        passphrase=hashlib.sha256(seed + b"passphrase").hexdigest(),
    )


def recover_clob_auth(chain_id: int, address: str, timestamp: str, nonce: int, signature: str) -> str:
    """The address that signed the L1 ClobAuth message (raises ValueError on a malformed one)."""
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "ClobAuth": [
                {"name": "address", "type": "address"},
                {"name": "timestamp", "type": "string"},
                {"name": "nonce", "type": "uint256"},
                {"name": "message", "type": "string"},
            ],
        },
        "primaryType": "ClobAuth",
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {"address": address, "timestamp": str(timestamp), "nonce": int(nonce), "message": CLOB_AUTH_MESSAGE},
    }
    try:
        signer: str = Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
    except Exception as exc:  # bad hex, wrong length, bad v: all "invalid signature"
        raise ValueError("invalid signature") from exc
    return signer


def hmac_signature(secret: str, timestamp: str, method: str, path: str, body: str | None) -> str:
    """The L2 POLY_SIGNATURE exactly as py_clob_client_v2 computes it (signing/hmac.py): the
    body text has single quotes turned into double quotes before hashing."""
    key = base64.urlsafe_b64decode(secret)
    msg = f"{timestamp}{method}{path}"
    if body:
        msg += body.replace("'", '"')
    return base64.urlsafe_b64encode(hmac.new(key, msg.encode(), hashlib.sha256).digest()).decode()


def _bytes32(h: str) -> bytes:
    return bytes.fromhex(str(h).removeprefix("0x").zfill(64))


def order_typed_data(order: Mapping[str, Any], chain_id: int, neg_risk: bool) -> dict[str, Any]:
    """EIP-712 typed data of a V2 order as posted (`POST /order` body's `order`)."""
    side = order["side"]
    side_int = {"BUY": 0, "SELL": 1}[side] if isinstance(side, str) else int(side)
    return {
        "primaryType": "Order",
        "types": {"EIP712Domain": _DOMAIN_TYPES, "Order": _ORDER_TYPES},
        "domain": {
            "name": "Polymarket CTF Exchange",
            "version": "2",
            "chainId": chain_id,
            "verifyingContract": NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2,
        },
        "message": {
            "salt": int(order["salt"]),
            "maker": order["maker"],
            "signer": order["signer"],
            "tokenId": int(order["tokenId"]),
            "makerAmount": int(order["makerAmount"]),
            "takerAmount": int(order["takerAmount"]),
            "side": side_int,
            "signatureType": int(order["signatureType"]),
            "timestamp": int(order["timestamp"]),
            "metadata": _bytes32(order.get("metadata") or "0x0"),
            "builder": _bytes32(order.get("builder") or "0x0"),
        },
    }


def order_hash(typed: dict[str, Any]) -> str:
    """The order id the CLOB answers with: the EIP-712 digest of the order, 0x-hex."""
    return "0x" + _hash_eip191_message(encode_typed_data(full_message=typed)).hex()


@functools.lru_cache(maxsize=16)
def _domain_hash(name: str, version: str, chain_id: int, contract: str) -> bytes:
    from eth_account._utils.encode_typed_data.encoding_and_hashing import hash_domain

    return bytes(hash_domain({"name": name, "version": version, "chainId": chain_id, "verifyingContract": contract}))


_ORDER_TYPE_HASH: bytes | None = None


def _encode_word(kind: str, value: Any) -> bytes:
    """One EIP-712 struct member as its 32-byte word (the atomic types the Order struct uses),
    range-checked as eth_abi checks them: a value out of range is a malformed order."""
    if kind.startswith("uint"):
        v = int(value)
        if v < 0 or v >= 1 << int(kind[4:]):
            raise ValueError(f"{kind} out of range")
        return v.to_bytes(32, "big")
    if kind == "address":
        raw = bytes.fromhex(str(value).removeprefix("0x"))
        if len(raw) != 20:
            raise ValueError("address is not 20 bytes")
        return bytes(12) + raw
    if kind == "bytes32":
        raw = value if isinstance(value, bytes) else bytes.fromhex(str(value).removeprefix("0x"))
        if len(raw) > 32:
            raise ValueError("bytes32 longer than 32 bytes")
        return raw.ljust(32, b"\x00")  # eth_abi pads bytesN on the right
    raise ValueError(f"unsupported EIP-712 member type {kind}")


def _keccak(data: bytes) -> bytes:
    from Crypto.Hash import keccak  # pycryptodome (an eth-account dependency): no eth_utils wrappers

    return keccak.new(digest_bits=256, data=data).digest()


def order_struct_hash(message: Mapping[str, Any]) -> bytes:
    """hashStruct(Order) built from `_ORDER_TYPES` word by word: equal to eth_account's generic
    `hash_struct("Order", ...)` (tests/sandbox/test_order_hash.py compares them on random orders)
    at a fraction of its cost; the sandbox verifies every posted order with it."""
    global _ORDER_TYPE_HASH
    if _ORDER_TYPE_HASH is None:
        sig = "Order(" + ",".join(f"{f['type']} {f['name']}" for f in _ORDER_TYPES) + ")"
        _ORDER_TYPE_HASH = _keccak(sig.encode())
    words = b"".join(_encode_word(f["type"], message[f["name"]]) for f in _ORDER_TYPES)
    return _keccak(_ORDER_TYPE_HASH + words)


def order_id_and_signer(typed: dict[str, Any], signature: str) -> tuple[str, str | None]:
    """(order hash, the EOA that signed it, lower-case hex, or None when no signer can be
    recovered), from ONE EIP-712 encoding (`order_struct_hash`); the public key is recovered with
    libsecp256k1 (coincurve) from the 65-byte r||s||v signature: a requote posts up to 100 orders
    at once, and the sandbox's verification is on every one of them."""
    d = typed["domain"]
    domain = _domain_hash(d["name"], d["version"], int(d["chainId"]), d["verifyingContract"])
    digest = _keccak(b"\x19\x01" + domain + order_struct_hash(typed["message"]))
    oid = "0x" + digest.hex()
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
        if len(raw) != 65 or raw[64] not in (27, 28):
            return oid, None
        import coincurve

        pub = coincurve.PublicKey.from_signature_and_message(raw[:64] + bytes((raw[64] - 27,)), digest, hasher=None)
    except (ValueError, TypeError):
        return oid, None
    return oid, "0x" + _keccak(pub.format(compressed=False)[1:])[-20:].hex()


def recover_order_signer(typed: dict[str, Any], signature: str) -> str:
    """The EOA that signed an order (types 0-2). Raises ValueError when it cannot be recovered."""
    try:
        signer: str = Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
    except Exception as exc:
        raise ValueError("invalid signature") from exc
    return signer
