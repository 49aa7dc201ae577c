"""The configuration directory: schema, defaults, loading and validation.

Everything an administrator edits lives in one directory (``config/`` by
default): ``broker.yaml``, ``clients/<client_id>.yaml`` and
``providers/<provider_id>.yaml``.  The schema is declared once here with
pydantic models that forbid unknown keys; :func:`load_config` collects *every*
problem with its file and key before giving up, so ``nc-connect check-config``
shows them all at once and ``serve`` refuses to start with the same messages.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from broker.errors import ConfigError

DEFAULT_CONFIG_DIR = "config"
ENV_CONFIG_DIR = "NC_CONNECT_CONFIG"
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def _check_url(value: str, *, allow_http_loopback: bool = True) -> str:
    """An absolute https URL (http only on loopback), without fragment or userinfo."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or not parts.hostname:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and not (allow_http_loopback and is_loopback(value)):
        raise ValueError(f"{value!r} must use https (http is only allowed on localhost)")
    if parts.fragment or "#" in value:
        raise ValueError(f"{value!r} must not contain a fragment")
    if "@" in parts.netloc:
        raise ValueError(f"{value!r} must not contain user information")
    return value


URL = Annotated[str, AfterValidator(_check_url)]


def _check_client_id(value: str) -> str:
    if not _CLIENT_ID.match(value):
        raise ValueError("must be 1-64 letters, digits, '.', '_' or '-'")
    return value


ClientId = Annotated[str, AfterValidator(_check_client_id)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Translation(_Strict):
    """A client's or identity source's text in another language than French (the config files' language)."""

    name: str | None = Field(None, min_length=1)
    description: str | None = None


# ``translations: {en: {name: …, description: …}}``: one entry per language of the pages other than French.
Translations = dict[Literal["en"], Translation]


class Lifetimes(_Strict):
    """Lifetimes in seconds.  FranceConnect uses a 30 s code and 60 s tokens."""

    authorization_code: int = Field(60, ge=1, le=60)
    access_token: int = Field(300, ge=10, le=3600)
    id_token: int = Field(300, ge=10, le=3600)
    refresh_token: int = Field(8 * 3600, ge=60, le=30 * 86400)
    session_idle: int = Field(30 * 60, ge=60, le=30 * 60)
    session_absolute: int = Field(12 * 3600, ge=300, le=12 * 3600)
    login_transaction: int = Field(30 * 60, ge=60, le=3600)


_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")


class SmtpSettings(_Strict):
    """The mail server that sends verification, reset and notification emails."""

    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: str | None = None  # may be ${ENV_VAR}
    sender: str
    timeout: int = Field(10, ge=1, le=120)

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        if not _EMAIL.match(v):
            raise ValueError(f"{v!r} is not an email address")
        return v

    @model_validator(mode="after")
    def _credentials(self) -> "SmtpSettings":
        if bool(self.username) != bool(self.password):
            raise ValueError("set both username and password, or neither")
        if self.password and not self.starttls and self.host not in LOOPBACK_HOSTS:
            raise ValueError("credentials are only sent over starttls (or to localhost)")
        return self


_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
LOGO_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".webp": "image/webp"}
LOGO_MAX_BYTES = 512 * 1024
PAGE_LANGUAGES = ("fr", "en")


def _luminance(colour: str) -> float:
    """WCAG 2.1 relative luminance of ``#rrggbb``."""
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


class LocalizedText(_Strict):
    """A text shown to citizens in each page language (French required)."""

    fr: str = Field(min_length=1, max_length=200)
    en: str | None = Field(None, min_length=1, max_length=200)

    def get(self, lang: str) -> str:
        return (self.en if lang == "en" else None) or self.fr


def _localized(value: Any) -> Any:
    return {"fr": value} if isinstance(value, str) else value


class BrandingSettings(_Strict):
    """The territory's identity on every citizen page (header, footer, titles); defaults: the Government of
    New Caledonia.  Colours are checked for WCAG AA contrast; the logo is a file of the configuration directory."""

    territory: str = Field("Gouvernement de la Nouvelle-Calédonie", min_length=1, max_length=80)
    service_name: str = Field("NC Connect", min_length=1, max_length=40)
    tagline: Annotated[LocalizedText, BeforeValidator(_localized)] = LocalizedText(
        fr="Le sésame numérique des services publics de Nouvelle-Calédonie",
        en="One login for New Caledonia's public online services")
    operator: str = Field("Gouvernement de la Nouvelle-Calédonie", min_length=1, max_length=120)
    logo: str | None = None  # relative to the configuration directory: svg, png, jpg or webp, at most 512 KiB
    logo_alt: str | None = Field(None, min_length=1, max_length=120)  # default: the territory's name
    # The République française block (Marianne): only for a deployment operated by the State itself.
    marianne: bool = False
    header_background: str = "#ffffff"
    header_text: str = "#161616"
    # "Besoin d'aide ?" on the login page (FranceConnect asks its identity providers for a support link)
    support_url: URL | None = None

    @field_validator("header_background", "header_text")
    @classmethod
    def _colour(cls, v: str) -> str:
        if not _COLOUR.match(v):
            raise ValueError(f"{v!r} is not a colour written #rrggbb")
        return v.lower()

    @field_validator("logo")
    @classmethod
    def _logo(cls, v: str | None) -> str | None:
        if v is None:
            return v
        path = Path(v)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a path inside the configuration directory")
        if path.suffix.lower() not in LOGO_TYPES:
            raise ValueError(f"must be one of {', '.join(sorted(LOGO_TYPES))}")
        return v

    @model_validator(mode="after")
    def _contrast(self) -> "BrandingSettings":
        ratio = contrast_ratio(self.header_background, self.header_text)
        if ratio < 4.5:
            raise ValueError(f"header_text on header_background has a contrast of {ratio:.2f}:1; "
                             "WCAG AA needs at least 4.5:1")
        return self


class BrokerSettings(_Strict):
    issuer: str
    database_url: str = "sqlite:///nc-connect.db"
    redis_url: str | None = None
    redis_key_prefix: str = Field("ncc:", min_length=1, max_length=40)
    keys_dir: str = "keys"
    key_rotation_overlap: int = Field(86400, ge=60)
    secure_cookies: bool = True
    lifetimes: Lifetimes = Lifetimes()
    # Seconds between two sweeps of expired sessions by a serving broker (back-channel logout at the
    # end of a session's absolute lifetime); 0 turns it off (then run ``nc-connect sessions sweep``
    # from a timer); at least 10 otherwise, so that the processes' lease keeps one sweep per interval.
    session_sweep_interval: int = Field(60, ge=0, le=3600)

    @field_validator("session_sweep_interval")
    @classmethod
    def _sweep_interval(cls, v: int) -> int:
        if 0 < v < 10:
            raise ValueError("0 (off) or at least 10 seconds")
        return v
    cors_origins: list[URL] = []
    # Number of reverse proxies in front of the broker whose X-Forwarded-For is trusted
    # (for the client IP used by throttling).  Issuer and URLs never come from headers.
    trusted_proxies: int = Field(0, ge=0, le=5)
    # Outgoing email (local accounts: sign-up, password reset, notices); without it, sign-up and reset are off.
    smtp: SmtpSettings | None = None
    # The territory's name, logo and header colours on the citizen pages.
    branding: BrandingSettings = BrandingSettings()

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        _check_url(v)
        parts = urlsplit(v)
        if parts.query:
            raise ValueError("the issuer must not contain a query")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _cookies(self) -> "BrokerSettings":
        if not self.secure_cookies and not is_loopback(self.issuer):
            raise ValueError("secure_cookies may only be false when the issuer is on localhost")
        return self


AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
EncAlg = Literal["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES"]
SCOPES_KNOWN = (
    "openid", "profile", "email", "birth", "identite_pivot", "given_name", "family_name",
    "birthdate", "gender", "birthplace", "birthcountry", "preferred_username", "offline_access",
)


def _only_known_scopes(scopes: list[str], known: tuple[str, ...]) -> list[str]:
    unknown = [s for s in scopes if s not in known]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return scopes


class ClientSettings(_Strict):
    client_id: ClientId
    name: str = Field(min_length=1)
    translations: Translations = {}
    redirect_uris: list[URL] = Field(min_length=1)
    post_logout_redirect_uris: list[URL] = []
    # The téléservice's home page (RFC 7591 client_uri): the citizen's way back from an error page;
    # default: the origin of the first redirect URI.
    client_uri: URL | None = None
    # OpenID Connect Back-Channel Logout 1.0: the broker POSTs a logout token here when the session ends.
    backchannel_logout_uri: URL | None = None
    backchannel_logout_session_required: bool = False  # the logout token always carries sid anyway
    client_secret: str | None = None
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    jwks_uri: URL | None = None
    scopes: list[str] = ["openid", "profile", "email"]
    grant_types: list[Literal["authorization_code", "refresh_token"]] = ["authorization_code"]
    subject_type: Literal["pairwise", "public"] = "pairwise"
    sector: str | None = None
    id_token_signed_response_alg: Literal["ES256", "RS256"] = "ES256"
    require_pkce: bool = True
    # For a legacy téléservice that cannot send them; ANSSI requires both (R12, R16).
    require_state_and_nonce: bool = True
    # "franceconnect": FranceConnect's conventions (signed userinfo, amr only through the claims parameter,
    # client_secret_post or private_key_jwt); FranceConnect itself is declared with it.
    profile: Literal["default", "franceconnect"] = "default"
    userinfo_signed_response_alg: Literal["ES256", "RS256"] | None = None
    id_token_encrypted_response_alg: EncAlg | None = None
    id_token_encrypted_response_enc: Literal["A256GCM"] = "A256GCM"
    userinfo_encrypted_response_alg: EncAlg | None = None
    userinfo_encrypted_response_enc: Literal["A256GCM"] = "A256GCM"
    # "implied": a service of the same administration, no consent page (the audit log says so)
    consent: Literal["explicit", "implied"] = "explicit"

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("contains the same URI twice")
        return v

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str]) -> list[str]:
        _only_known_scopes(v, SCOPES_KNOWN)
        if "openid" not in v:
            raise ValueError("must include 'openid'")
        return v

    @model_validator(mode="after")
    def _auth(self) -> "ClientSettings":
        method = self.token_endpoint_auth_method
        if method in ("client_secret_basic", "client_secret_post"):
            if not self.client_secret:
                raise ValueError(f"client_secret is required with token_endpoint_auth_method {method}")
            if len(self.client_secret) < 32:
                raise ValueError("client_secret must be at least 32 characters")
        elif self.client_secret:
            raise ValueError(f"client_secret must not be set with token_endpoint_auth_method {method}")
        if method == "private_key_jwt" and not (self.jwks or self.jwks_uri):
            raise ValueError("private_key_jwt needs jwks or jwks_uri")
        if self.jwks and self.jwks_uri:
            raise ValueError("set jwks or jwks_uri, not both")
        if method == "none" and not self.require_pkce:
            raise ValueError("a public client (token_endpoint_auth_method none) must use PKCE")
        if self.profile == "franceconnect":
            if method not in ("client_secret_post", "private_key_jwt"):
                raise ValueError("the franceconnect profile uses client_secret_post or private_key_jwt")
            if not self.require_state_and_nonce:
                raise ValueError("the franceconnect profile requires state and nonce")
        if (self.id_token_encrypted_response_alg or self.userinfo_encrypted_response_alg) and not (self.jwks or self.jwks_uri):
            raise ValueError("encrypted responses need the client's keys in jwks or jwks_uri")
        return self

    @property
    def userinfo_alg(self) -> str | None:
        """The userinfo signature algorithm: FranceConnect's profile always signs (application/jwt)."""
        if self.userinfo_signed_response_alg or self.profile != "franceconnect":
            return self.userinfo_signed_response_alg
        return self.id_token_signed_response_alg

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def sector_id(self) -> str:
        """Pairwise subjects are computed per sector (several client ids may share one)."""
        return self.sector or self.client_id


DATA_PROVIDER_SCOPES = tuple(s for s in SCOPES_KNOWN if s != "offline_access")


class DataProviderSettings(_Strict):
    """A data provider (fournisseur de données): checks téléservices' access tokens at ``/checktoken``."""

    data_provider_id: str
    name: str = Field(min_length=1)
    client_id: ClientId
    client_secret: str = Field(min_length=32)
    scopes: list[str] = Field(min_length=1)  # the scopes it serves: all it may see of a token
    sector: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: URL | None = None
    checktoken_signed_response_alg: Literal["ES256", "RS256"] = "ES256"
    checktoken_encrypted_response_alg: Literal["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES"] | None = None
    checktoken_encrypted_response_enc: Literal["A256GCM"] = "A256GCM"

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str]) -> list[str]:
        return _only_known_scopes(v, DATA_PROVIDER_SCOPES)

    @model_validator(mode="after")
    def _keys(self) -> "DataProviderSettings":
        if self.jwks and self.jwks_uri:
            raise ValueError("set jwks or jwks_uri, not both")
        if self.checktoken_encrypted_response_alg and not (self.jwks or self.jwks_uri):
            raise ValueError("checktoken_encrypted_response_alg needs the data provider's keys in jwks or jwks_uri")
        return self

    @property
    def sector_id(self) -> str:
        """The data provider's pairwise sector: its own ``sub`` for each citizen."""
        return self.sector or self.client_id


class ProviderSettings(_Strict):
    """Settings shared by every kind of identity source; kinds add their own keys."""

    model_config = ConfigDict(extra="allow", frozen=True)
    provider_id: str
    type: str
    name: str = Field(min_length=1)
    description: str = ""
    translations: Translations = {}
    mapping: str
    enabled: bool = True
    order: int = 100
    # "franceconnect" shows the FranceConnect button as its brand rules describe
    button: Literal["default", "franceconnect"] = "default"


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}" if self.key else f"{self.file}: {self.message}"


@dataclass
class Config:
    directory: Path
    broker: BrokerSettings
    clients: dict[str, ClientSettings] = field(default_factory=dict)
    providers: dict[str, ProviderSettings] = field(default_factory=dict)
    data_providers: dict[str, DataProviderSettings] = field(default_factory=dict)  # by client_id

    def path(self, relative: str) -> Path:
        """Resolve a path written in broker.yaml relative to the configuration directory."""
        p = Path(relative)
        return p if p.is_absolute() else (self.directory / p).resolve()

    @property
    def database_url(self) -> str:
        url = self.broker.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != "sqlite:///:memory:" and not url.startswith("sqlite:////"):
            return prefix + str(self.path(url[len(prefix):]))
        return url

    @property
    def keys_dir(self) -> Path:
        return self.path(self.broker.keys_dir)

    @property
    def mappings_dir(self) -> Path:
        return MAPPINGS_DIR


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a mapping's key: the key itself is the last part already
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _expand_env(value: Any, problems: list[Problem], file: str, key: str) -> Any:
    if isinstance(value, str):
        m = _ENV_REF.match(value)
        if m:
            if m.group(1) not in os.environ:
                problems.append(Problem(file, key, f"environment variable {m.group(1)} is not set"))
                return None
            return os.environ[m.group(1)]
    return value


def _read_yaml(path: Path, display: str, problems: list[Problem]) -> dict | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(display, "", f"cannot be read: {exc}"))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problems.append(Problem(display, "", f"{where}invalid YAML: {getattr(exc, 'problem', exc)}"))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(Problem(display, "", "must be a mapping of keys to values"))
        return None
    return data


def _validate(model: type[BaseModel], data: dict, display: str, problems: list[Problem]):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            key = _loc(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(Problem(display, key, msg))
        return None


def _entity_files(directory: Path, kind: str, problems: list[Problem]) -> list[tuple[str, Path]]:
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [(p.stem, p) for p in files]


def config_dir_from(arg: str | None) -> Path:
    return Path(arg or os.environ.get(ENV_CONFIG_DIR) or DEFAULT_CONFIG_DIR)


def load_config(directory: str | Path, *, provider_validator=None) -> Config:
    """Load and validate the whole configuration directory.

    Raises :class:`ConfigError` carrying every :class:`Problem` found.
    ``provider_validator(settings, display) -> list[Problem]`` lets the broker
    check each provider's kind-specific keys without this module knowing them.
    """
    directory = Path(directory)
    problems: list[Problem] = []
    broker_file = directory / "broker.yaml"
    if not directory.is_dir():
        raise ConfigError([Problem(str(directory), "", "configuration directory not found")])
    broker = None
    if not broker_file.is_file():
        problems.append(Problem(str(broker_file), "", "file not found"))
    else:
        data = _read_yaml(broker_file, str(broker_file), problems)
        if data is not None:
            if "redis_url" in data:
                data["redis_url"] = _expand_env(data["redis_url"], problems, str(broker_file), "redis_url")
            if "database_url" in data:
                data["database_url"] = _expand_env(data["database_url"], problems, str(broker_file), "database_url")
            if isinstance(data.get("smtp"), dict) and "password" in data["smtp"]:
                data["smtp"]["password"] = _expand_env(data["smtp"]["password"], problems, str(broker_file),
                                                       "smtp.password")
            broker = _validate(BrokerSettings, data, str(broker_file), problems)

    clients: dict[str, ClientSettings] = {}
    seen: dict[str, str] = {}
    for stem, path in _entity_files(directory / "clients", "client", problems):
        display = str(path)
        data = _read_yaml(path, display, problems)
        if data is None:
            continue
        client_id = data.setdefault("client_id", stem)
        if client_id in seen:
            problems.append(Problem(display, "client_id", f"duplicated id {client_id!r} (also in {seen[client_id]})"))
            continue
        seen[str(client_id)] = display
        if "client_secret" in data:
            data["client_secret"] = _expand_env(data["client_secret"], problems, display, "client_secret")
        client = _validate(ClientSettings, data, display, problems)
        if client:
            clients[client.client_id] = client
            if client.jwks:
                problems.extend(_check_jwks(client.jwks, display))

    providers: dict[str, ProviderSettings] = {}
    seen = {}
    for stem, path in _entity_files(directory / "providers", "provider", problems):
        display = str(path)
        data = _read_yaml(path, display, problems)
        if data is None:
            continue
        provider_id = data.setdefault("provider_id", stem)
        if provider_id in seen:
            problems.append(Problem(display, "provider_id", f"duplicated id {provider_id!r} (also in {seen[provider_id]})"))
            continue
        seen[str(provider_id)] = display
        # ${ENV_VAR} anywhere at the top level; an unset variable only matters for an enabled source
        env_problems: list[Problem] = []
        data = {k: _expand_env(v, env_problems, display, k) for k, v in data.items()}
        if data.get("enabled", True) is not False:
            problems.extend(env_problems)
        provider = _validate(ProviderSettings, data, display, problems)
        if not provider:
            continue
        if provider_validator and (provider.enabled or not env_problems):
            problems.extend(provider_validator(provider, display))
        providers[provider.provider_id] = provider
    if broker and not any(p.enabled for p in providers.values()):
        problems.append(Problem(str(directory / "providers"), "", "no enabled identity source"))

    data_providers = _load_data_providers(directory / "data_providers", clients, problems)
    if broker is not None and broker.branding.logo:
        problems.extend(_check_logo(directory, broker.branding.logo, str(broker_file)))

    if problems or broker is None:
        raise ConfigError(problems)
    return Config(directory=directory.resolve(), broker=broker, clients=clients, providers=providers,
                  data_providers=data_providers)


def _load_data_providers(directory: Path, clients: dict[str, ClientSettings],
                         problems: list[Problem]) -> dict[str, DataProviderSettings]:
    """``data_providers/<id>.yaml``, keyed by their ``client_id`` (distinct from every téléservice's)."""
    out: dict[str, DataProviderSettings] = {}
    seen: dict[str, str] = {}
    for stem, path in _entity_files(directory, "data provider", problems):
        display = str(path)
        data = _read_yaml(path, display, problems)
        if data is None:
            continue
        data.setdefault("data_provider_id", stem)
        if "client_secret" in data:
            data["client_secret"] = _expand_env(data["client_secret"], problems, display, "client_secret")
        dp = _validate(DataProviderSettings, data, display, problems)
        if dp is None:
            continue
        if dp.client_id in seen:
            problems.append(Problem(display, "client_id", f"duplicated client_id {dp.client_id!r} (also in {seen[dp.client_id]})"))
            continue
        if dp.client_id in clients:
            problems.append(Problem(display, "client_id", f"{dp.client_id!r} is already a téléservice's client_id"))
            continue
        seen[dp.client_id] = display
        if dp.jwks:
            problems.extend(_check_jwks(dp.jwks, display))
        out[dp.client_id] = dp
    return out


def _check_logo(directory: Path, logo: str, display: str) -> list[Problem]:
    path = directory / logo
    if not path.is_file():
        return [Problem(display, "branding.logo", f"file {logo!r} not found in the configuration directory")]
    if directory.resolve() not in path.resolve().parents:  # a symbolic link may not lead outside
        return [Problem(display, "branding.logo", "must be a file inside the configuration directory")]
    if path.stat().st_size > LOGO_MAX_BYTES:
        return [Problem(display, "branding.logo", f"is larger than {LOGO_MAX_BYTES // 1024} KiB")]
    return []


def _check_jwks(jwks: dict, display: str) -> list[Problem]:
    from joserfc.jwk import KeySet

    try:
        keyset = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except Exception as exc:  # joserfc raises several error types for malformed keys
        return [Problem(display, "jwks", f"is not a valid JWK set: {exc}")]
    if any(k.is_private for k in keyset.keys):
        return [Problem(display, "jwks", "contains private key material; publish only public keys")]
    return []
