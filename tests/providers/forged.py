"""A scriptable fake upstream for token-level forgeries.

The real upstream (tests/upstream) only issues honest tokens; to check that the
provider refuses forged, expired or mis-addressed ones, this small HTTP server plays
the upstream's back channel (discovery, JWKS, token, userinfo) over real HTTP on a
loopback port and answers with whatever the test sets: tokens the test signs itself.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any, Callable

from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

CLIENT_ID = "nc-connect-test"
CLIENT_SECRET = "forged-upstream-client-secret-0123456789"
CALLBACK = "http://localhost:8000/login/forged/callback"


def new_key(kind: str = "EC", kid: str | None = None) -> Key:
    if kind == "EC":
        return ECKey.generate_key("P-256", {"kid": kid or f"es-{secrets.token_hex(4)}", "alg": "ES256", "use": "sig"})
    return RSAKey.generate_key(2048, {"kid": kid or f"rs-{secrets.token_hex(4)}", "alg": "RS256", "use": "sig"})


class ForgedUpstream:
    """Answers discovery, JWKS, token and userinfo as the test tells it to."""

    def __init__(self) -> None:
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.issuer = f"http://localhost:{self.server.server_port}"
        self.es_key = new_key("EC", "es-1")
        self.rs_key = new_key("RSA", "rs-1")
        self.published: list[Key] = [self.es_key, self.rs_key]
        self.discovery_overrides: dict[str, Any] = {}
        self.token_response: dict[str, Any] | None = None
        self.token_status = 200
        self.userinfo_response: tuple[int, str, str] | None = None  # status, content type, body
        self.hits: dict[str, int] = {}
        self.token_requests: list[dict[str, str]] = []
        self.token_headers: list[dict[str, str]] = []
        self.userinfo_headers: list[dict[str, str]] = []
        self.clock: Callable[[], float] = time.time
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self._thread.join(timeout=5)
        self.server.server_close()

    # ----------------------------------------------------------------- what the test uses

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Provider settings pointing at this upstream."""
        return {"issuer": self.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "level": "eidas2", **overrides}

    def sign(self, claims: dict[str, Any], key: Key | None = None, alg: str | None = None,
             header: dict[str, Any] | None = None) -> str:
        key = key or self.es_key
        alg = alg or key.alg
        head = {"alg": alg, "kid": key.kid, **(header or {})}
        head = {k: v for k, v in head.items() if v is not None}
        return jwt.encode(head, {k: v for k, v in claims.items() if v is not None}, key, algorithms=[alg])

    def id_token_claims(self, nonce: str, /, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock())
        claims = {"iss": self.issuer, "sub": "forged-sub-1", "aud": CLIENT_ID, "exp": now + 60, "iat": now,
                  "auth_time": now - 5, "nonce": nonce, "acr": "eidas1", "amr": ["pwd"]}
        claims.update(overrides)
        return claims

    def answer(self, id_token: str, *, access_token: str | None = None,
               userinfo: dict[str, Any] | str | None = None, userinfo_type: str | None = None) -> str:
        """Set the next token response (and userinfo); returns the access token."""
        access_token = access_token or secrets.token_urlsafe(32)
        self.token_response = {"access_token": access_token, "token_type": "Bearer", "expires_in": 60,
                               "id_token": id_token}
        if userinfo is None:
            userinfo = {"sub": "forged-sub-1", "given_name": "Jean", "family_name": "Kabar"}
        if isinstance(userinfo, str):
            self.userinfo_response = (200, userinfo_type or "application/jwt", userinfo)
        else:
            self.userinfo_response = (200, userinfo_type or "application/json; charset=utf-8", json.dumps(userinfo))
        return access_token

    # ----------------------------------------------------------------- HTTP

    def discovery(self) -> dict[str, Any]:
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/session/end",
            "authorization_response_iss_parameter_supported": True,
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        }
        doc.update(self.discovery_overrides)
        return {k: v for k, v in doc.items() if v is not None}

    def wsgi(self, environ, start_response):
        request = Request(environ)
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        if request.path == "/.well-known/openid-configuration":
            response = Response(json.dumps(self.discovery()), content_type="application/json")
        elif request.path == "/jwks":
            keys = {"keys": [k.as_dict(private=False) for k in self.published]}
            response = Response(json.dumps(keys), content_type="application/json")
        elif request.path == "/token" and request.method == "POST":
            self.token_requests.append(dict(request.form))
            self.token_headers.append(dict(request.headers))
            body = self.token_response or {"error": "invalid_grant"}
            status = self.token_status if self.token_response else 400
            response = Response(json.dumps(body), status=status, content_type="application/json")
        elif request.path == "/userinfo":
            self.userinfo_headers.append(dict(request.headers))
            status, content_type, body = self.userinfo_response or (401, "application/json", "{}")
            response = Response(body, status=status, content_type=content_type)
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)
