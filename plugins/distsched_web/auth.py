"""Security by default: bind rules, the bearer token, the login session and CSRF.

* No ``DISTSCHED_WEB_TOKEN``: the server listens on loopback only and is read-only (every
  mutating call is refused with 403). There is no default token.
* A non-loopback bind refuses to start without the token; it then also requires a login
  (pages) or the bearer token (API) to read anything.
* API: ``Authorization: Bearer <token>`` on every mutating call.
* Pages: ``/login`` takes the token once and sets an HttpOnly, SameSite=Strict session
  cookie signed with a key derived from the token (the token itself is never stored in the
  cookie, a page or a log); every form carries a CSRF token bound to a per-browser cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import time

import attrs

from distsched.model import ValidationError

TOKEN_ENV = "DISTSCHED_WEB_TOKEN"
DEFAULT_BIND = "127.0.0.1:8787"
SESSION_COOKIE = "distsched_session"
CSRF_COOKIE = "distsched_csrf"
SESSION_SECONDS = 12 * 3600
MIN_TOKEN = 16


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6); raises ValidationError naming ``bind``."""
    if not isinstance(text, str) or ":" not in text:
        raise ValidationError("bind", f"must be HOST:PORT, not {text!r}")
    host, _, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        raise ValidationError("bind", f"port must be an integer, not {port_text!r}") from None
    if not 0 <= port <= 65535 or not host:
        raise ValidationError("bind", f"must be HOST:PORT with a port in 0-65535, not {text!r}")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@attrs.frozen
class Security:
    """The web server's security settings (built once at start)."""

    token: str | None = attrs.field(repr=False)
    loopback: bool
    secure_cookies: bool = False
    #: Signs the per-browser CSRF cookies; random per server process.
    csrf_key: bytes = attrs.field(factory=lambda: secrets.token_bytes(32), repr=False)

    @classmethod
    def for_bind(cls, host: str, token: str | None = None, *, secure_cookies: bool = False) -> Security:
        """Check the bind rule; ``token`` defaults to ``$DISTSCHED_WEB_TOKEN``."""
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        if token is not None and len(token) < MIN_TOKEN:
            raise ValidationError(TOKEN_ENV, f"must be at least {MIN_TOKEN} characters (use a random one, "
                                             "e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
        loopback = is_loopback(host)
        if not loopback and token is None:
            raise ValidationError("bind", f"{host} is not a loopback address: set {TOKEN_ENV} to listen on it "
                                          "(without a token the dashboard binds to loopback only)")
        return cls(token=token, loopback=loopback, secure_cookies=secure_cookies)

    @property
    def writable(self) -> bool:
        return self.token is not None

    @property
    def reads_need_login(self) -> bool:
        return not self.loopback

    def _session_key(self) -> bytes:
        assert self.token is not None
        return hmac.new(self.token.encode(), b"distsched-web-session", hashlib.sha256).digest()

    # -- bearer -------------------------------------------------------------------------
    def bearer_ok(self, header: str | None) -> bool:
        if self.token is None or not header:
            return False
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode())

    def token_ok(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    # -- session ------------------------------------------------------------------------
    def new_session(self, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_SECONDS)
        body = f"{secrets.token_urlsafe(16)}.{expires}"
        return f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        return hmac.new(self._session_key(), body.encode(), hashlib.sha256).hexdigest()

    def session_ok(self, cookie: str | None, now: float | None = None) -> bool:
        if self.token is None or not cookie or cookie.count(".") != 2:
            return False
        body, _, sig = cookie.rpartition(".")
        if not hmac.compare_digest(sig.encode(), self._sign(body).encode()):
            return False
        try:
            expires = int(body.rsplit(".", 1)[1])
        except ValueError:
            return False
        return expires > (now or time.time())

    # -- CSRF ---------------------------------------------------------------------------
    @staticmethod
    def new_csrf_cookie() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, cookie: str) -> str:
        return hmac.new(self.csrf_key, cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, cookie: str | None, given: str | None) -> bool:
        if not cookie or not given:
            return False
        return hmac.compare_digest(given.encode(), self.csrf_token(cookie).encode())
