"""The broker's error hierarchy.

``OAuthError`` subclasses carry an RFC 6749 / OIDC error code and are turned
into protocol responses at one boundary (``broker.oidc.responses``).  The
``description`` goes to the client; ``detail`` goes to the logs only.
Everything else the broker raises derives from ``BrokerError``.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base class of the broker's own (non-protocol) errors."""


class ConfigError(BrokerError):
    def __init__(self, problems: list) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems) or "invalid configuration")


class OAuthError(Exception):
    error = "server_error"
    status_code = 400

    def __init__(self, description: str = "", *, detail: str = "") -> None:
        super().__init__(description or self.error)
        self.description = description
        self.detail = detail

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status_code = 401


class TooManyFailedAttempts(OAuthError):
    """Client authentication refused unchecked while a soft lock lasts (``broker.oidc.client_auth``).

    RFC 6749 §5.2 has no error code for throttling (``slow_down`` is the device flow's
    polling signal, RFC 8628 §3.5; ``temporarily_unavailable`` belongs to the
    authorization endpoint and blames the server).  The answer keeps the §5.2 JSON form
    with its generic code ``invalid_request`` -- not ``invalid_client``, which would tell a
    client holding the right secret that its secret is wrong -- and the meaning is carried
    by HTTP: 429 Too Many Requests with ``Retry-After`` (RFC 6585 §4, RFC 9110 §10.2.3).
    """

    error = "invalid_request"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed client authentications, retry later",
                         detail=f"retry after {retry_after} s")
        self.retry_after = retry_after


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class AccessDenied(OAuthError):
    error = "access_denied"


class LoginRequired(OAuthError):
    error = "login_required"


class InteractionRequired(OAuthError):
    error = "interaction_required"


class RequestNotSupported(OAuthError):
    error = "request_not_supported"


class RequestUriNotSupported(OAuthError):
    error = "request_uri_not_supported"


class InvalidToken(OAuthError):
    """RFC 6750 §3.1: answered with 401 and ``WWW-Authenticate``."""

    error = "invalid_token"
    status_code = 401


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class UnsafeRedirect(BrokerError):
    """The client or its redirect URI cannot be trusted: show a page, never redirect (RFC 9700 §4.11.2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
