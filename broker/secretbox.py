"""Authenticated encryption of the small secrets kept in the database (the TOTP secrets).

AES-256-GCM with the data key (``<keys_dir>/data-key``, see broker.keys).  A sealed value is
``v1:`` + base64url(nonce (12 bytes) || ciphertext || tag (16 bytes)), without padding.  The
associated data binds the ciphertext to its row and purpose (``"totp:<account id>"``): a value
copied into another row, or used for another purpose, does not open.  A value without the
prefix is a legacy clear value (see ``is_sealed``).
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.errors import BrokerError

PREFIX = "v1:"
_NONCE = 12


class SecretBoxError(BrokerError):
    """The value does not open: wrong key, wrong row or purpose, or damaged."""


def aad(purpose: str, row_id: str) -> bytes:
    return f"{purpose}:{row_id}".encode()


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def seal(key: bytes, plaintext: str, associated: bytes) -> str:
    nonce = os.urandom(_NONCE)
    sealed = nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), associated)
    return PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def unseal(key: bytes, value: str, associated: bytes) -> str:
    if not is_sealed(value):
        raise SecretBoxError("not a sealed value")
    body = value[len(PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], associated).decode()
    except (InvalidTag, ValueError, binascii.Error) as exc:
        raise SecretBoxError("the value does not open with this data key") from exc
