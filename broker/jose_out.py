"""JWTs the broker hands to a client: signed with the broker's key, encrypted to the client's key when asked.

Nested JWT (OIDC Core §16.14): sign first, then encrypt with the client's
public encryption key (``use: enc`` or no ``use``, of the algorithm's key type)
taken from its ``jwks`` or ``jwks_uri``.
"""

from __future__ import annotations

from typing import Any

from joserfc import jwe

from broker.app import Broker
from broker.config import ClientSettings
from broker.errors import BrokerError
from broker.oidc.client_auth import client_keys

ENCRYPTION_ALGS = ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "A256GCM"]


class NoEncryptionKey(BrokerError):
    pass


def encryption_key(client: ClientSettings, alg: str):
    kty = "EC" if alg.startswith("ECDH") else "RSA"
    for key in client_keys(client).keys:
        if key.key_type == kty and key.get("use") in (None, "enc") and key.get("alg") in (None, alg):
            return key
    raise NoEncryptionKey(f"client {client.client_id} publishes no {kty} encryption key for {alg}")


def seal(broker: Broker, client: ClientSettings, claims: dict[str, Any], *, sign_alg: str,
         enc_alg: str | None, enc: str, typ: str = "JWT") -> str:
    signed = broker.keys.sign(claims, sign_alg, typ)
    if not enc_alg:
        return signed
    key = encryption_key(client, enc_alg)
    header = {"alg": enc_alg, "enc": enc, "cty": "JWT"}
    if key.kid:
        header["kid"] = key.kid
    return jwe.encrypt_compact(header, signed, key, algorithms=ENCRYPTION_ALGS)
