"""A fake OAuth 2 provider with Google- and GitHub-shaped profile endpoints, strict
enough that the app's authorization-code flow with PKCE really has to be right.

    with FakeOAuth() as fake:
        settings = settings.replace(oauth={"google": fake.google_config(), "github": fake.github_config()})
        fake.google_user["email_verified"] = False      # configure the profile
        fake.deny = "access_denied"                     # or make /authorize refuse

Endpoints:
  GET  /authorize    records its parameters and redirects (302) to redirect_uri with
                     ?code=&state= (or ?error=&error_description=&state= when `deny` is set)
  POST /token        grant_type=authorization_code; checks the client (form or Basic),
                     the code it issued (single use), the same redirect_uri, and that
                     BASE64URL(SHA256(code_verifier)) equals the code_challenge it saw
  GET  /userinfo     Google-style {sub, email, email_verified, name}
  GET  /user         GitHub-style {id, login, name, email}
  GET  /user/emails  GitHub-style [{email, primary, verified}]
The profile endpoints need `Authorization: Bearer <a token /token issued>`.

Like FakeLLM it runs Quart on Hypercorn in a background thread with its own loop.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
import threading
from typing import Any
from urllib.parse import urlencode

from quart import Quart, Response, jsonify, request

from tests.fakes.threaded_server import ThreadedServer

__all__ = ["FakeOAuth", "GOOGLE_USER", "GITHUB_USER", "GITHUB_EMAILS"]

GOOGLE_USER = {"sub": "g-1001", "email": "gina@example.com", "email_verified": True, "name": "Gina Google"}
GITHUB_USER = {"id": 4242, "login": "octo", "name": "Octo Cat", "email": None}
GITHUB_EMAILS = [
    {"email": "octo-old@example.com", "primary": False, "verified": True},
    {"email": "octo@example.com", "primary": True, "verified": True},
]


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier (RFC 7636, section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class FakeOAuth(ThreadedServer):
    def __init__(self, client_id: str = "fake-client-id", client_secret: str = "fake-client-secret") -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self._lock = threading.Lock()
        self._app = self._make_app()
        self.reset()

    # ---- public API

    def reset(self) -> None:
        with self._lock:
            self.google_user: dict[str, Any] = copy.deepcopy(GOOGLE_USER)
            self.github_user: dict[str, Any] = copy.deepcopy(GITHUB_USER)
            self.github_emails: list[dict[str, Any]] = copy.deepcopy(GITHUB_EMAILS)
            self.deny: str | None = None  # an error code /authorize answers with instead of a code
            self.authorize_requests: list[dict[str, str]] = []
            self.token_requests: list[dict[str, Any]] = []  # form fields and the outcome ("ok" or the error)
            self.issued_codes: list[str] = []
            self.issued_tokens: list[str] = []
            self._codes: dict[str, dict[str, str]] = {}
            self._tokens: set[str] = set()

    def google_config(self, **overrides: str) -> dict[str, str]:
        """A settings.oauth["google"] entry pointing at this fake."""
        return {"authorize_url": f"{self.url}/authorize", "token_url": f"{self.url}/token",
                "userinfo_url": f"{self.url}/userinfo", "scope": "openid email profile",
                "client_id": self.client_id, "client_secret": self.client_secret, **overrides}

    def github_config(self, **overrides: str) -> dict[str, str]:
        """A settings.oauth["github"] entry pointing at this fake."""
        return {"authorize_url": f"{self.url}/authorize", "token_url": f"{self.url}/token",
                "userinfo_url": f"{self.url}/user", "emails_url": f"{self.url}/user/emails",
                "scope": "read:user user:email", "client_id": self.client_id,
                "client_secret": self.client_secret, **overrides}


    # ---- the provider

    def _authorized(self) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            return scheme.lower() == "bearer" and token in self._tokens

    def _client_credentials(self, form) -> tuple[str | None, str | None]:
        auth = request.authorization  # client_secret_basic
        if auth is not None and auth.type == "basic":
            return auth.username, auth.password
        return form.get("client_id"), form.get("client_secret")  # client_secret_post

    async def _token(self) -> Response:
        form = await request.form
        client_id, client_secret = self._client_credentials(form)

        def refuse(error: str, status: int = 400) -> Response:
            with self._lock:
                self.token_requests.append({**form.to_dict(), "outcome": error})
            response = jsonify({"error": error, "error_description": f"fake provider: {error}"})
            response.status_code = status
            return response

        if client_id != self.client_id or client_secret != self.client_secret:
            return refuse("invalid_client", 401)
        if form.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type")
        with self._lock:
            issued = self._codes.pop(form.get("code", ""), None)  # a code is redeemed once, right or wrong
        if issued is None or issued["client_id"] != client_id:
            return refuse("invalid_grant")
        if form.get("redirect_uri") != issued["redirect_uri"]:
            return refuse("invalid_grant")
        verifier = form.get("code_verifier") or ""
        if issued["code_challenge_method"] != "S256" or not 43 <= len(verifier) <= 128 \
                or s256(verifier) != issued["code_challenge"]:
            return refuse("invalid_grant")
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
            self.issued_tokens.append(token)
            self.token_requests.append({**form.to_dict(), "outcome": "ok"})
        return jsonify({"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                        "scope": issued["scope"]})

    def _make_app(self) -> Quart:
        app = Quart("fake_oauth")
        app.before_serving(self._ready.set)

        @app.get("/authorize")
        async def authorize() -> Response:
            params = request.args.to_dict()
            with self._lock:
                self.authorize_requests.append(params)
                deny = self.deny
            redirect_uri = params.get("redirect_uri")
            if not redirect_uri or params.get("client_id") != self.client_id:
                return jsonify({"error": "invalid_client"}), 400  # a real provider shows an error page
            back: dict[str, str] = {}
            if deny:
                back = {"error": deny, "error_description": "The user denied the request"}
            elif params.get("response_type") != "code":
                back = {"error": "unsupported_response_type"}
            elif params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
                back = {"error": "invalid_request", "error_description": "PKCE S256 is required"}
            else:
                code = secrets.token_urlsafe(16)
                with self._lock:
                    self._codes[code] = {"client_id": params["client_id"], "redirect_uri": redirect_uri,
                                         "code_challenge": params["code_challenge"],
                                         "code_challenge_method": params["code_challenge_method"],
                                         "scope": params.get("scope", "")}
                    self.issued_codes.append(code)
                back = {"code": code}
            if "state" in params:
                back["state"] = params["state"]
            separator = "&" if "?" in redirect_uri else "?"
            return Response("", status=302, headers={"Location": redirect_uri + separator + urlencode(back)})

        @app.post("/token")
        async def token() -> Response:
            return await self._token()

        @app.get("/userinfo")
        async def userinfo():
            if not self._authorized():
                return jsonify({"error": "invalid_token"}), 401
            with self._lock:
                return jsonify(self.google_user)

        @app.get("/user")
        async def github_user():
            if not self._authorized():
                return jsonify({"message": "Bad credentials"}), 401
            with self._lock:
                return jsonify(self.github_user)

        @app.get("/user/emails")
        async def github_emails():
            if not self._authorized():
                return jsonify({"message": "Bad credentials"}), 401
            with self._lock:
                return jsonify(self.github_emails)

        return app
