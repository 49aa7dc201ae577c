"""Signing keys: generation, rotation with overlap, the published JWKS, signing.

The key file (``<keys_dir>/signing-keys.json``, mode 0600) holds, per
algorithm, the current private key and the keys retired by earlier rotations
with the time they were retired.  The JWKS publishes the public part of the
current keys and of retired keys still inside the overlap period, so tokens
signed just before a rotation still verify (OIDC Core §10.1.1).  Running
workers notice a rotation through the file's modification time.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from broker.errors import BrokerError

ALGORITHMS = ("ES256", "RS256")
KEY_FILE = "signing-keys.json"
SUBJECT_SECRET_FILE = "subject-secret"
DATA_KEY_FILE = "data-key"  # AES-256 key of the secrets kept in the database (broker.secretbox)


class KeysMissing(BrokerError):
    pass


def _generate(alg: str) -> dict[str, Any]:
    key = ECKey.generate_key("P-256", private=True) if alg == "ES256" else RSAKey.generate_key(3072, private=True)
    data = key.as_dict(private=True)
    data.update(kid=f"{alg.lower()}-{time.strftime('%Y%m%d')}-{secrets.token_hex(4)}", alg=alg, use="sig")
    return data


def _temp_file(path: Path, content: str) -> Path:
    """A complete private file (mode 0600) next to ``path``, under a name of its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(tmp)


def _write_private(path: Path, content: str) -> None:
    """Replace ``path`` atomically (a reader sees the old or the new content, never a part)."""
    tmp = _temp_file(path, content)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_private(path: Path, content: str) -> bool:
    """Create ``path`` with ``content`` unless it exists; never replaces it.  The file appears
    complete (hard link of a finished temporary file); of two concurrent calls the first wins and
    the second returns False, leaving the first's content."""
    tmp = _temp_file(path, content)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links (some network shares): exclusive creation instead
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
        return True
    finally:
        tmp.unlink(missing_ok=True)


class SecretLost(BrokerError):
    """A secret the deployment already depends on is missing: it must be restored, not recreated."""


class KeysExist(BrokerError):
    pass


def ensure_secrets(keys_dir: Path, *, deployed: bool | None = None,
                   sealed_values: Callable[[], int] | None = None) -> list[str]:
    """Create the pairwise subject secret and the data key when absent; never replaced
    (every pairwise sub depends on the first, every sealed column on the second).
    Returns the names of the files created.

    A missing secret is only created when nothing can depend on it yet:

    * ``subject-secret``: not for a deployed directory (``deployed``, by default: the signing
      keys exist), whose pairwise subs it made; raises SecretLost (restore it from the backup).
    * ``data-key``: not while ``sealed_values()`` counts values sealed with a data key in the
      database (raises SecretLost); without ``sealed_values`` the caller asserts there is none
      (a fresh deployment).  ``nc-connect keys generate`` always asks the database.
    """
    if deployed is None:
        deployed = (keys_dir / KEY_FILE).exists()
    subject, data_key = keys_dir / SUBJECT_SECRET_FILE, keys_dir / DATA_KEY_FILE
    # every check before any file is created: a refusal leaves the directory as it was
    if not subject.exists() and deployed:
        raise SecretLost(
            f"{subject} is missing while the signing keys exist: every pairwise sub already issued depends "
            f"on it, and a new one would change them all. Restore it from the backup of {keys_dir}.")
    sealed = 0 if data_key.exists() or not sealed_values else sealed_values()
    if sealed:
        raise SecretLost(
            f"{data_key} is missing while the database holds {sealed} TOTP secret(s) encrypted with it: a new "
            f"key would not open them. Restore it from the backup of {keys_dir} (taken with the database). "
            f"If it is lost for good, 'keys generate --if-missing --data-key-lost' creates a new one: these "
            f"citizens then sign in with a recovery code and enrol their second factor again.")
    created = []
    for name, path in ((SUBJECT_SECRET_FILE, subject), (DATA_KEY_FILE, data_key)):
        if not path.exists() and _create_private(path, secrets.token_hex(32)):
            created.append(name)
    return created


def generate(keys_dir: Path, *, force: bool = False, sealed_values: Callable[[], int] | None = None) -> list[str]:
    """Create a fresh key set (and the subject secret and data key if absent, see
    ``ensure_secrets``). Returns the new kids."""
    path = keys_dir / KEY_FILE
    exists = f"{path} already exists; use 'keys rotate' to replace the keys"
    if path.exists() and not force:
        raise KeysExist(exists)
    # the secrets first: whenever the signing keys exist, so do they
    ensure_secrets(keys_dir, deployed=path.exists(), sealed_values=sealed_values)
    current = [_generate(alg) for alg in ALGORITHMS]
    content = json.dumps({"current": current, "retired": []}, indent=2)
    if force:
        _write_private(path, content)
    elif not _create_private(path, content):  # a concurrent run was first
        raise KeysExist(exists)
    return [k["kid"] for k in current]


def rotate(keys_dir: Path, overlap: int) -> list[str]:
    """Retire the current keys (still published for ``overlap`` seconds) and create new ones."""
    path = keys_dir / KEY_FILE
    if not path.exists():
        raise KeysMissing(f"{path} not found; run 'nc-connect keys generate' first")
    data = json.loads(path.read_text())
    now = int(time.time())
    retired = [k for k in data["retired"] if k["retired_at"] + overlap > now]
    retired += [dict(k, retired_at=now) for k in data["current"]]
    current = [_generate(alg) for alg in ALGORITHMS]
    _write_private(path, json.dumps({"current": current, "retired": retired}, indent=2))
    return [k["kid"] for k in current]


def _private(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "retired_at"}


def _public(d: dict) -> dict:
    priv = _private(d)
    key = ECKey.import_key(priv) if priv["kty"] == "EC" else RSAKey.import_key(priv)
    out = key.as_dict(private=False)
    out.update(kid=d["kid"], alg=d["alg"], use="sig")
    return out


@dataclass
class _Loaded:
    mtime: float
    signing: dict[str, Any]  # alg -> private key object
    kids: dict[str, str]  # alg -> kid
    jwks: dict[str, Any]
    verify: KeySet


class KeyRing:
    """Signs with the current keys; verifies with every published key."""

    def __init__(self, keys_dir: Path, overlap: int) -> None:
        self.path = keys_dir / KEY_FILE
        self.overlap = overlap
        self._loaded: _Loaded | None = None
        self.subject_secret = b""
        self.data_key = b""

    def _load(self) -> _Loaded:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            raise KeysMissing(f"{self.path} not found; run 'nc-connect keys generate'") from None
        if self._loaded and self._loaded.mtime == mtime:
            return self._loaded
        data = json.loads(self.path.read_text())
        now = time.time()
        published = data["current"] + [k for k in data["retired"] if k["retired_at"] + self.overlap > now]
        jwks = {"keys": [_public(k) for k in published]}
        signing = {}
        kids = {}
        for k in data["current"]:
            priv = _private(k)
            signing[k["alg"]] = ECKey.import_key(priv) if k["kty"] == "EC" else RSAKey.import_key(priv)
            kids[k["alg"]] = k["kid"]
        self.subject_secret = (self.path.parent / SUBJECT_SECRET_FILE).read_text().strip().encode()
        self.data_key = read_data_key(self.path.parent / DATA_KEY_FILE)
        self._loaded = _Loaded(mtime, signing, kids, jwks, KeySet.import_key_set(jwks))
        return self._loaded

    def jwks(self) -> dict[str, Any]:
        return self._load().jwks

    def sign(self, claims: dict[str, Any], alg: str = "ES256", typ: str = "JWT") -> str:
        loaded = self._load()
        header = {"alg": alg, "kid": loaded.kids[alg], "typ": typ}
        return jwt.encode(header, claims, loaded.signing[alg], algorithms=[alg])

    def verify(self, token: str) -> dict[str, Any]:
        """Verify a JWT this broker signed (any published key); return its claims.

        Raises joserfc errors on a bad signature, an unknown kid or a forbidden alg.
        """
        loaded = self._load()
        return jwt.decode(token, loaded.verify, algorithms=list(ALGORITHMS)).claims

    def ensure_subject_secret(self) -> bytes:
        self._load()
        return self.subject_secret

    def ensure_data_key(self) -> bytes:
        self._load()
        return self.data_key


def read_data_key(path: Path) -> bytes:
    try:
        key = bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        raise KeysMissing(f"{path} not found; run 'nc-connect keys generate --if-missing'") from None
    except ValueError:
        key = b""
    if len(key) != 32:
        raise KeysMissing(f"{path} is not a 256-bit key (64 hexadecimal digits)")
    return key
