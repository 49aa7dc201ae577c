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
