"""The ``oidc`` identity source: an upstream OpenID Provider, FranceConnect profile.

NC Connect is a relying party of the upstream here (authorization code flow with
PKCE S256, server-side code exchange over verified TLS).  The defaults follow
FranceConnect v2: ``client_secret_post``, ES256 or RS256 ID tokens, ``acr`` values
``eidas1``…``eidas3``, UserInfo as JSON or as a signed JWT (``application/jwt``).

Every check of the security checklist's group B that belongs to a provider is one
small named function below, run in a declared order by :meth:`OidcProvider.complete_login`:

====================  ===========================================================
transaction           the stored expected issuer is this upstream's (B-05)
iss parameter         RFC 9207 ``iss`` equals the issuer; required when advertised (B-05)
upstream error        ``error=`` on the callback (B-15)
code exchange         server-side, configured client authentication, PKCE verifier (B-01, B-04, B-12)
ID token              JWS only, ``alg`` allow-list, key from ``jwks_uri`` by ``kid`` and ``alg``,
                      ``jku``/``x5u``/``jwk``/``x5c`` ignored, one rate-limited JWKS
                      re-fetch on an unknown ``kid`` (B-07, B-16); ``iss``, ``aud``,
                      ``azp``, ``exp``, ``iat``, ``nonce``, ``at_hash`` (B-03, B-08)
level                 ``acr`` mapped through ``acr_map`` (an unknown value is refused, a missing
                      one counts as eidas1), capped at ``level``, at least the
                      lowest requested level; ``auth_time`` against ``max_age`` (B-09)
UserInfo              bearer call, JSON or signed JWT validated like an ID token,
                      ``sub`` equal to the ID token's (B-10)
====================  ===========================================================

Every refusal is an :class:`UpstreamError` whose ``message`` is a short French sentence
for the citizen and whose ``detail`` (for the logs) never contains a token or a code.
Access tokens are used once for UserInfo and forgotten; only the upstream ID token is
kept, in ``session_data``, as ``id_token_hint`` for logout (B-13).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from providers.base import LEVELS, LoginRequest, LoginStep, N_, UpstreamError, UpstreamIdentity, level_rank

log = logging.getLogger("nc_connect.providers.oidc")

Level = Literal["eidas1", "eidas2", "eidas3"]

# Asymmetric JWS algorithms an upstream may be allowed to use; ``none`` and HS* never.
SigningAlg = Literal["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"]
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}

DISCOVERY_TTL = 3600  # seconds a discovery document is reused
JWKS_TTL = 3600  # seconds a JWKS is reused when every kid is known
JWKS_REFETCH_INTERVAL = 60  # at most one unknown-kid re-fetch per this many seconds (B-16)
MAX_TOKEN_AGE = 600  # an ID token issued longer ago than this is not "recent" (B-08)
CLIENT_ASSERTION_LIFETIME = 60
# Claims about the token itself rather than the person: not copied into the attributes.
PROTOCOL_CLAIMS = frozenset({"iss", "aud", "azp", "exp", "iat", "nbf", "jti", "nonce", "at_hash", "c_hash",
                             "s_hash", "sid"})

# What the citizen reads (French); the cause goes to ``detail``.
MSG_UNAVAILABLE = N_("Le fournisseur d'identité est momentanément indisponible. Veuillez réessayer plus tard.")
MSG_CANCELLED = N_("La connexion a été annulée ou refusée auprès du fournisseur d'identité.")
MSG_UPSTREAM_ERROR = N_("Le fournisseur d'identité a signalé une erreur. Veuillez réessayer plus tard.")
MSG_INVALID = N_("La réponse du fournisseur d'identité n'a pas pu être vérifiée. "
                 "Veuillez recommencer la connexion.")
MSG_LEVEL = N_("Le niveau de sécurité de la connexion auprès du fournisseur d'identité est insuffisant pour ce service.")
MSG_TOO_OLD = N_("Votre authentification auprès du fournisseur d'identité est trop ancienne. Veuillez vous reconnecter.")


# --------------------------------------------------------------------------- settings


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def _check_url(value: str) -> str:
    """An absolute https URL (http only on localhost), without fragment or user information."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and not _is_loopback(value):
        raise ValueError(f"{value!r} must use https (http is only allowed on localhost)")
    if parts.fragment or "#" in value:
        raise ValueError(f"{value!r} must not contain a fragment")
    if "@" in parts.netloc:
        raise ValueError(f"{value!r} must not contain user information")
    return value


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class OidcSettings(BaseModel):
    """The kind-specific keys of a ``type: oidc`` provider file (unknown keys are errors).

    Endpoints come from discovery at ``<issuer>/.well-known/openid-configuration`` (whose
    ``issuer`` must be exactly the configured one and whose endpoints must be on the
    issuer's origin), each overridable by a static value; when ``authorization_endpoint``,
    ``token_endpoint`` and ``jwks_uri`` are all static, discovery is not used at all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    jwks_uri: str | None = None
    end_session_endpoint: str | None = None
    client_id: str = Field(min_length=1)
    client_secret: str | None = None
    token_endpoint_auth_method: Literal["client_secret_post", "client_secret_basic", "private_key_jwt"] = \
        "client_secret_post"
    private_key_file: str | None = None
    private_key_alg: Literal["ES256", "RS256", "PS256"] | None = None
    scopes: list[str] = ["openid", "profile", "email", "birth"]
    acr_values: list[str] = []
    level: Level = "eidas1"
    acr_map: dict[str, Level] = {"eidas1": "eidas1", "eidas2": "eidas2", "eidas3": "eidas3"}
    id_token_signing_alg_values: list[SigningAlg] = Field(["ES256", "RS256"], min_length=1)
    userinfo: Literal["json", "jwt", "auto"] = "auto"
    clock_skew: int = Field(60, ge=0, le=120)
    timeout: float = Field(10, gt=0, le=60)
    ca_bundle: str | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        _check_url(v)
        if urlsplit(v).query:
            raise ValueError("the issuer must not contain a query")
        return v  # kept exactly: discovery and ID tokens must carry this very string

    @field_validator("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                     "end_session_endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v)

    @field_validator("scopes", mode="before")
    @classmethod
    def _split_scopes(cls, v: Any) -> Any:
        return v.split() if isinstance(v, str) else v

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str]) -> list[str]:
        if "openid" not in v:
            raise ValueError("must contain openid")
        if len(set(v)) != len(v):
            raise ValueError("must not repeat a scope")
        if any(not s or " " in s for s in v):
            raise ValueError("scopes are single words")
        return v

    @property
    def static(self) -> bool:
        """Endpoints given statically: no discovery at all."""
        return bool(self.authorization_endpoint and self.token_endpoint and self.jwks_uri)


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or base_dir is None else base_dir / p


def load_private_key(path: Path) -> Key:
    """A private signing key from a JWK (JSON) or PEM file."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"{"):
        key = JWKRegistry.import_key(json.loads(data))
    else:
        key = None
        for cls in (RSAKey, ECKey, OKPKey):
            try:
                key = cls.import_key(data)
                break
            except Exception:  # noqa: BLE001 - try the next key type
                continue
        if key is None:
            raise ValueError("neither a JWK nor a PEM private key")
    if not key.is_private:
        raise ValueError("holds a public key, not a private key")
    return key


def _alg_fits_key(alg: str, key: Key) -> bool:
    if alg.startswith("ES"):
        return key.key_type == "EC" and key.get("crv") == {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg]
    if alg.startswith(("RS", "PS")):
        return key.key_type == "RSA"
    if alg == "EdDSA":
        return key.key_type == "OKP" and key.get("crv") in ("Ed25519", "Ed448")
    return False


def _cross_checks(settings: OidcSettings, base_dir: Path | None) -> tuple[list[tuple[str, str]], Key | None]:
    """Checks between keys and on files; returns the problems and the loaded private key."""
    problems: list[tuple[str, str]] = []
    key = None
    method = settings.token_endpoint_auth_method
    if method == "private_key_jwt":
        if settings.client_secret:
            problems.append(("client_secret", "not used with private_key_jwt"))
        if not settings.private_key_file:
            problems.append(("private_key_file", "required with private_key_jwt"))
        else:
            try:
                key = load_private_key(_resolve(settings.private_key_file, base_dir))
            except (OSError, ValueError, TypeError, KeyError, JoseError) as exc:
                problems.append(("private_key_file", f"cannot be loaded: {exc}"))
            else:
                alg = settings.private_key_alg or ("ES256" if key.key_type == "EC" else "RS256")
                if not _alg_fits_key(alg, key):
                    problems.append(("private_key_alg", f"{alg} does not fit a {key.key_type} key"))
    else:
        if not settings.client_secret:
            problems.append(("client_secret", f"required with {method}"))
        elif len(settings.client_secret) < 32:
            problems.append(("client_secret", "must be at least 32 characters"))
        for name in ("private_key_file", "private_key_alg"):
            if getattr(settings, name):
                problems.append((name, "only used with private_key_jwt"))
    for i, value in enumerate(settings.acr_values):
        if value not in settings.acr_map:
            problems.append((f"acr_values.{i}", f"{value!r} is not a key of acr_map"))
    if settings.ca_bundle and not _resolve(settings.ca_bundle, base_dir).is_file():
        problems.append(("ca_bundle", "file not found"))
    return problems, key


def _problems_of(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        out.append((key, msg))
    return out


def parse_settings(raw: Mapping[str, Any], base_dir: Path | None = None) -> tuple[OidcSettings, Key | None]:
    """Validated settings (and the private key for private_key_jwt); raises pydantic ValidationError."""
    settings = OidcSettings.model_validate(dict(raw))
    problems, key = _cross_checks(settings, base_dir)
    if problems:
        raise ValidationError.from_exception_data("OidcSettings", [
            InitErrorDetails(type=PydanticCustomError("value_error", "{msg}", {"msg": msg}), loc=(k,), input=raw.get(k))
            for k, msg in problems
        ])
    return settings, key


def validate_settings(raw: Mapping[str, Any], base_dir: Path | None = None) -> list[tuple[str, str]]:
    """Every (key, message) problem of a provider file's kind-specific keys, for check-config."""
    try:
        parse_settings(raw, base_dir)
    except ValidationError as exc:
        return _problems_of(exc)
    return []


# --------------------------------------------------------------------------- helpers


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def _short(value: Any, limit: int = 200) -> str:
    """A bounded, printable rendering of an upstream-supplied value for the logs."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _invalid(detail: str) -> UpstreamError:
    return UpstreamError(MSG_INVALID, detail)


def _unavailable(detail: str) -> UpstreamError:
    return UpstreamError(MSG_UNAVAILABLE, detail)


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    jwks_uri: str
    userinfo: str | None = None
    end_session: str | None = None
    iss_parameter_supported: bool = False


# --------------------------------------------------------------------------- provider


class OidcProvider:
    """A redirect-style source backed by one upstream OpenID Provider."""

    def __init__(self, provider_id: str, name: str, settings: OidcSettings, *, private_key: Key | None = None,
                 base_dir: Path | None = None, clock: Callable[[], float] = time.time,
                 http: requests.Session | None = None) -> None:
        self.provider_id = provider_id
        self.name = name
        self.settings = settings
        self.level = settings.level
        self.clock = clock
        self._private_key = private_key
        self._http = http or requests.Session()
        self._verify: str | bool = str(_resolve(settings.ca_bundle, base_dir)) if settings.ca_bundle else True
        self._lock = threading.RLock()
        self._endpoints: Endpoints | None = None
        self._endpoints_at = 0.0
        self._keys: list[tuple[str | None, Key]] = []
        self._keys_at: float | None = None
        self._forced_refetch_at: float | None = None

    @classmethod
    def from_settings(cls, provider_id: str, name: str, raw: Mapping[str, Any], *, base_dir: Path | None = None,
                      clock: Callable[[], float] = time.time, http: requests.Session | None = None) -> "OidcProvider":
        """Build from a provider file's kind-specific keys; raises pydantic ValidationError.

        ``base_dir`` resolves relative ``private_key_file`` and ``ca_bundle`` paths (the
        configuration directory).  No network access happens here: discovery is read at
        the first login."""
        settings, key = parse_settings(raw, base_dir)
        return cls(provider_id, name, settings, private_key=key, base_dir=base_dir, clock=clock, http=http)

    # ----------------------------------------------------------------- HTTP

    def _get(self, url: str, what: str, **kwargs: Any) -> requests.Response:
        try:
            return self._http.get(url, timeout=self.settings.timeout, verify=self._verify, allow_redirects=False,
                                  **kwargs)
        except requests.RequestException as exc:
            raise _unavailable(f"{what} unreachable: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _json_object(response: requests.Response, what: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise _invalid(f"{what} is not a JSON object")
        return data

    # ----------------------------------------------------------------- metadata (B-06)

    def endpoints(self) -> Endpoints:
        """The upstream's endpoints: static ones, else discovery (cached), static ones taking precedence."""
        s = self.settings
        if s.static:
            return Endpoints(authorization=s.authorization_endpoint, token=s.token_endpoint, jwks_uri=s.jwks_uri,
                             userinfo=s.userinfo_endpoint, end_session=s.end_session_endpoint)
        with self._lock:
            if self._endpoints is None or self.clock() - self._endpoints_at > DISCOVERY_TTL:
                self._endpoints = self._discover()
                self._endpoints_at = self.clock()
            return self._endpoints

    def _discover(self) -> Endpoints:
        s = self.settings
        url = s.issuer.rstrip("/") + "/.well-known/openid-configuration"
        response = self._get(url, "discovery")
        if response.status_code != 200:
            raise _unavailable(f"discovery answered HTTP {response.status_code}")
        doc = self._json_object(response, "discovery document")
        if doc.get("issuer") != s.issuer:
            raise _unavailable(f"discovery issuer {_short(doc.get('issuer'))} is not the configured {s.issuer!r}")

        def endpoint(name: str, required: bool) -> str | None:
            static = getattr(s, name)
            if static:
                return static
            value = doc.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str):
                raise _unavailable(f"discovery {name} missing or not a string")
            try:
                _check_url(value)
            except ValueError as exc:
                raise _unavailable(f"discovery {name}: {exc}") from None
            if _origin(value) != _origin(s.issuer):
                raise _unavailable(f"discovery {name} {_short(value)} is not on the issuer's host")
            return value

        return Endpoints(
            authorization=endpoint("authorization_endpoint", True),
            token=endpoint("token_endpoint", True),
            jwks_uri=endpoint("jwks_uri", True),
            userinfo=endpoint("userinfo_endpoint", False),
            end_session=endpoint("end_session_endpoint", False),
            iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
        )

    # ----------------------------------------------------------------- keys (B-07, B-16)

    def _fetch_keys(self) -> None:
        response = self._get(self.endpoints().jwks_uri, "jwks_uri")
        if response.status_code != 200:
            raise _unavailable(f"jwks_uri answered HTTP {response.status_code}")
        doc = self._json_object(response, "JWKS")
        if not isinstance(doc.get("keys"), list):
            raise _invalid("JWKS has no keys list")
        keys = []
        for data in doc["keys"]:
            if not isinstance(data, dict) or data.get("use", "sig") != "sig" or data.get("kty") == "oct":
                continue
            try:
                keys.append((data.get("kid"), JWKRegistry.import_key(data)))
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                log.warning("provider %s: JWKS key %s ignored: %s", self.provider_id, _short(data.get("kid")), exc)
        self._keys = keys
        self._keys_at = self.clock()

    def _select_key(self, kid: str | None, alg: str) -> Key | None:
        fitting = [(k_id, key) for k_id, key in self._keys
                   if _alg_fits_key(alg, key) and key.get("alg") in (None, alg)]
        if kid is not None:
            fitting = [(k_id, key) for k_id, key in fitting if k_id == kid]
        return fitting[0][1] if len(fitting) == 1 else None

    def _key_for(self, kid: str | None, alg: str) -> Key:
        """The upstream key for this ``kid`` and ``alg``, re-fetching the JWKS once, at a limited rate."""
        with self._lock:
            now = self.clock()
            if self._keys_at is None or now - self._keys_at > JWKS_TTL:
                self._fetch_keys()
            key = self._select_key(kid, alg)
            if key is None and (self._forced_refetch_at is None
                                or now - self._forced_refetch_at >= JWKS_REFETCH_INTERVAL):
                self._forced_refetch_at = now
                self._fetch_keys()
                key = self._select_key(kid, alg)
            if key is None:
                raise _invalid(f"no single upstream key for kid {_short(kid)} and alg {alg}")
            return key

    def _decode_jws(self, token: str, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(header, claims) of a signed JWT, verified with an upstream key; the token never reaches the detail."""
        parts = token.split(".")
        if len(parts) == 5:
            raise _invalid(f"{what} is encrypted (JWE), which is not supported")
        if len(parts) != 3:
            raise _invalid(f"{what} is not a compact JWS")
        try:
            header = json.loads(_b64url_decode(parts[0]))
        except (ValueError, UnicodeDecodeError):
            raise _invalid(f"{what} header is not base64url JSON") from None
        if not isinstance(header, dict):
            raise _invalid(f"{what} header is not a JSON object")
        alg = header.get("alg")
        if alg not in self.settings.id_token_signing_alg_values:
            raise _invalid(f"{what} alg {_short(alg)} is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _invalid(f"{what} kid is not a string")
        # Only the configured jwks_uri gives keys: jku, x5u, jwk and x5c are never read.
        key = self._key_for(kid, alg)
        try:
            decoded = jwt.decode(token, key, algorithms=[alg],
                                 registry=JWSRegistry(algorithms=[alg], strict_check_header=False))
        except JoseError as exc:
            raise _invalid(f"{what} rejected: {exc.error}") from None
        except (ValueError, TypeError):
            raise _invalid(f"{what} is malformed") from None
        if not isinstance(decoded.claims, dict):
            raise _invalid(f"{what} payload is not a JSON object")
        return dict(decoded.header), decoded.claims

    # ----------------------------------------------------------------- begin

    def _upstream_acr_values(self, requested: tuple[str, ...]) -> list[str]:
        """The configured acr_values, else the requested eIDAS levels through the reverse of acr_map."""
        if self.settings.acr_values:
            return list(self.settings.acr_values)
        out: list[str] = []
        for level in requested:
            for upstream, mapped in self.settings.acr_map.items():
                if mapped == level and upstream not in out:
                    out.append(upstream)
        return out

    def begin_login(self, request: LoginRequest) -> LoginStep:
        s = self.settings
        verifier = secrets.token_urlsafe(64)
        params = {
            "response_type": "code",
            "client_id": s.client_id,
            "redirect_uri": request.callback_url,
            "scope": " ".join(s.scopes),
            "state": request.state,
            "nonce": request.nonce,
            "code_challenge": _b64url(hashlib.sha256(verifier.encode("ascii")).digest()),
            "code_challenge_method": "S256",
        }
        acr_values = self._upstream_acr_values(request.acr_values)
        if acr_values:
            params["acr_values"] = " ".join(acr_values)
        if request.force_login:
            params["prompt"] = "login"
        if request.max_age is not None:
            params["max_age"] = str(request.max_age)
        if request.login_hint:
            params["login_hint"] = request.login_hint
        if request.ui_locales:
            params["ui_locales"] = request.ui_locales
        return LoginStep(redirect_url=_with_query(self.endpoints().authorization, params),
                         provider_state={"code_verifier": verifier, "issuer": s.issuer})

    # ----------------------------------------------------------------- complete: the checks, in order

    def complete_login(self, params: Mapping[str, str], provider_state: Mapping[str, Any],
                       request: LoginRequest) -> UpstreamIdentity:
        endpoints = self.endpoints()
        self._check_transaction(provider_state)
        self._check_iss_parameter(params, endpoints)
        self._check_upstream_error(params)
        code = params.get("code")
        if not code:
            raise _invalid("callback without code")
        tokens = self._exchange_code(endpoints, code, provider_state["code_verifier"], request.callback_url)
        raw_id_token = tokens["id_token"]
        header, claims = self._decode_jws(raw_id_token, "ID token")
        self._check_id_token_claims(claims, request)
        self._check_at_hash(header, claims, tokens["access_token"])
        acr = self._check_level(claims, request)
        auth_time = self._check_auth_time(claims, request)
        userinfo = self._userinfo(endpoints, tokens["access_token"], claims["sub"])
        attributes = {k: v for k, v in claims.items() if k not in PROTOCOL_CLAIMS}
        attributes.update({k: v for k, v in userinfo.items() if k not in PROTOCOL_CLAIMS})
        amr = claims.get("amr") or ()
        return UpstreamIdentity(
            provider_id=self.provider_id,
            subject=claims["sub"],
            acr=acr,
            amr=tuple(str(a) for a in amr),
            auth_time=auth_time,
            attributes=attributes,
            issuer=self.settings.issuer,
            session_data={"id_token": raw_id_token},
        )

    def _check_transaction(self, provider_state: Mapping[str, Any]) -> None:
        """The transaction was started with this upstream (mix-up defence, B-05)."""
        if provider_state.get("issuer") != self.settings.issuer:
            raise _invalid(f"transaction expected issuer {_short(provider_state.get('issuer'))}, "
                           f"this provider is {self.settings.issuer!r}")
        if not isinstance(provider_state.get("code_verifier"), str):
            raise _invalid("transaction has no PKCE code_verifier")

    def _check_iss_parameter(self, params: Mapping[str, str], endpoints: Endpoints) -> None:
        """RFC 9207 §2.4: ``iss`` equals the issuer; required when the upstream advertises it."""
        iss = params.get("iss")
        if iss is None:
            if endpoints.iss_parameter_supported:
                raise _invalid("authorization response without iss although the upstream advertises it")
            return
        if iss != self.settings.issuer:
            raise _invalid(f"authorization response iss {_short(iss)} is not {self.settings.issuer!r}")

    def _check_upstream_error(self, params: Mapping[str, str]) -> None:
        """``error=`` on the callback (B-15): refuse, never loop back upstream."""
        error = params.get("error")
        if error is None:
            return
        message = MSG_CANCELLED if error == "access_denied" else MSG_UPSTREAM_ERROR
        raise UpstreamError(message, f"upstream error {_short(error, 60)}: "
                                     f"{_short(params.get('error_description', ''))}")

    def _client_auth(self, token_endpoint: str, data: dict[str, str]) -> dict[str, str]:
        """Adds the configured client authentication to ``data``; returns extra headers."""
        s = self.settings
        if s.token_endpoint_auth_method == "client_secret_post":
            data.update(client_id=s.client_id, client_secret=s.client_secret)
            return {}
        if s.token_endpoint_auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: both parts form-urlencoded before base64.
            pair = f"{quote(s.client_id, safe='')}:{quote(s.client_secret, safe='')}"
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}
        now = int(self.clock())
        alg = s.private_key_alg or ("ES256" if self._private_key.key_type == "EC" else "RS256")
        header = {"alg": alg, "typ": "JWT"}
        if self._private_key.kid:
            header["kid"] = self._private_key.kid
        assertion = jwt.encode(header, {
            "iss": s.client_id, "sub": s.client_id, "aud": token_endpoint, "jti": secrets.token_urlsafe(32),
            "iat": now, "exp": now + CLIENT_ASSERTION_LIFETIME,
        }, self._private_key, algorithms=[alg])
        data.update(client_id=s.client_id,
                    client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    client_assertion=assertion)
        return {}

    def _exchange_code(self, endpoints: Endpoints, code: str, verifier: str, redirect_uri: str) -> dict[str, str]:
        """Server-side code exchange over verified TLS (B-01), PKCE verifier (B-04)."""
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier}
        headers = {"Accept": "application/json", **self._client_auth(endpoints.token, data)}
        try:
            response = self._http.post(endpoints.token, data=data, headers=headers, timeout=self.settings.timeout,
                                       verify=self._verify, allow_redirects=False)
        except requests.RequestException as exc:
            raise _unavailable(f"token endpoint unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            try:
                body = response.json()
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            raise UpstreamError(MSG_UPSTREAM_ERROR, f"token endpoint answered HTTP {response.status_code}: "
                                                    f"{_short(body.get('error'), 60)} "
                                                    f"{_short(body.get('error_description'))}")
        tokens = self._json_object(response, "token response")
        if str(tokens.get("token_type", "")).lower() != "bearer":
            raise _invalid(f"token response token_type {_short(tokens.get('token_type'), 40)} is not Bearer")
        for name in ("id_token", "access_token"):
            if not isinstance(tokens.get(name), str) or not tokens[name]:
                raise _invalid(f"token response has no {name}")
        return tokens

    def _check_id_token_claims(self, claims: Mapping[str, Any], request: LoginRequest) -> None:
        """OIDC Core §3.1.3.7 (B-03, B-08)."""
        s = self.settings
        now = self.clock()
        if claims.get("iss") != s.issuer:
            raise _invalid(f"ID token iss {_short(claims.get('iss'))} is not {s.issuer!r}")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _invalid("ID token sub missing or not a string")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or s.client_id not in audiences:
            raise _invalid(f"ID token aud {_short(aud)} does not contain our client_id")
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != s.client_id:
            raise _invalid(f"ID token azp {_short(azp)} is not our client_id")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _is_number(exp) or not _is_number(iat):
            raise _invalid("ID token exp or iat missing or not a number")
        if now > exp + s.clock_skew:
            raise _invalid(f"ID token expired {int(now - exp)} s ago")
        if iat > now + s.clock_skew:
            raise _invalid(f"ID token iat {int(iat - now)} s in the future")
        if now - iat > MAX_TOKEN_AGE + s.clock_skew:
            raise _invalid(f"ID token issued {int(now - iat)} s ago")
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or nbf > now + s.clock_skew):
            raise _invalid("ID token not yet valid (nbf)")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), request.nonce.encode()):
            raise _invalid("ID token nonce does not match the transaction")

    @staticmethod
    def _check_at_hash(header: Mapping[str, Any], claims: Mapping[str, Any], access_token: str) -> None:
        """OIDC Core §3.1.3.8: when ``at_hash`` is present it binds the access token used for UserInfo."""
        at_hash = claims.get("at_hash")
        if at_hash is None:
            return
        bits = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
        alg = str(header.get("alg", ""))
        digest = bits.get(alg[-3:], hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(access_token.encode()).digest()
        expected = _b64url(digest[: len(digest) // 2])
        if not isinstance(at_hash, str) or not hmac.compare_digest(at_hash, expected):
            raise _invalid("ID token at_hash does not match the access token")

    def _check_level(self, claims: Mapping[str, Any], request: LoginRequest) -> str:
        """``acr`` mapped via acr_map (eidas1 when absent), capped at ``level``, at least the lowest requested level (B-09)."""
        upstream_acr = claims.get("acr")
        if upstream_acr is None:
            mapped = LEVELS[0]  # no statement: the lowest level, never more
        else:
            mapped = self.settings.acr_map.get(upstream_acr) if isinstance(upstream_acr, str) else None
            if mapped is None:
                raise UpstreamError(MSG_LEVEL, f"ID token acr {_short(upstream_acr)} is not in acr_map")
        if level_rank(mapped) > level_rank(self.settings.level):
            mapped = self.settings.level
        wanted = [level_rank(v) for v in request.acr_values if level_rank(v)]
        if wanted and level_rank(mapped) < min(wanted):
            raise UpstreamError(MSG_LEVEL, f"reached {mapped} (upstream acr {_short(upstream_acr)}), "
                                           f"requested {' '.join(request.acr_values)}")
        return mapped

    def _check_auth_time(self, claims: Mapping[str, Any], request: LoginRequest) -> int:
        auth_time = claims.get("auth_time")
        if auth_time is not None and not _is_number(auth_time):
            raise _invalid("ID token auth_time is not a number")
        if request.max_age is not None:
            if auth_time is None:
                raise _invalid("ID token has no auth_time although max_age was requested")
            if self.clock() - auth_time > request.max_age + self.settings.clock_skew:
                raise UpstreamError(MSG_TOO_OLD, f"auth_time {int(self.clock() - auth_time)} s ago, "
                                                 f"max_age {request.max_age}")
        return int(auth_time if auth_time is not None else claims["iat"])

    def _userinfo(self, endpoints: Endpoints, access_token: str, sub: str) -> dict[str, Any]:
        """UserInfo as JSON or as a signed JWT; its ``sub`` must be the ID token's (B-10)."""
        if not endpoints.userinfo:
            return {}
        response = self._get(endpoints.userinfo, "userinfo endpoint",
                             headers={"Authorization": f"Bearer {access_token}",
                                      "Accept": "application/json, application/jwt"})
        if response.status_code != 200:
            raise UpstreamError(MSG_UPSTREAM_ERROR, f"userinfo answered HTTP {response.status_code}")
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        mode = self.settings.userinfo
        if mode == "auto":
            mode = "jwt" if content_type == "application/jwt" else "json"
        if mode == "jwt":
            if content_type != "application/jwt":
                raise _invalid(f"userinfo content type {_short(content_type, 60)} is not application/jwt")
            claims = self._userinfo_jwt(response.text.strip())
        else:
            if content_type != "application/json" and not content_type.endswith("+json"):
                raise _invalid(f"userinfo content type {_short(content_type, 60)} is not JSON")
            claims = self._json_object(response, "userinfo")
        if claims.get("sub") != sub:
            raise _invalid("userinfo sub is not the ID token sub")
        return claims

    def _userinfo_jwt(self, token: str) -> dict[str, Any]:
        """OIDC Core §5.3.2: a signed UserInfo response is checked like an ID token (iss, aud, exp)."""
        s = self.settings
        _, claims = self._decode_jws(token, "userinfo JWT")
        if claims.get("iss") != s.issuer:
            raise _invalid(f"userinfo JWT iss {_short(claims.get('iss'))} is not {s.issuer!r}")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or s.client_id not in audiences:
            raise _invalid(f"userinfo JWT aud {_short(aud)} does not contain our client_id")
        exp = claims.get("exp")
        if exp is not None and (not _is_number(exp) or self.clock() > exp + s.clock_skew):
            raise _invalid("userinfo JWT expired")
        return claims

    # ----------------------------------------------------------------- logout

    def begin_logout(self, session_data: Mapping[str, Any], state: str, return_url: str) -> str | None:
        """RP-Initiated Logout 1.0: the end_session_endpoint with id_token_hint, state and return URL (B-17)."""
        endpoint = self.endpoints().end_session
        if not endpoint:
            return None
        params: dict[str, str] = {}
        id_token = session_data.get("id_token")
        if id_token:
            params["id_token_hint"] = id_token
        else:
            params["client_id"] = self.settings.client_id
        params["state"] = state
        params["post_logout_redirect_uri"] = return_url
        return _with_query(endpoint, params)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
