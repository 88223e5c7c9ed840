"""Who may see the board and change incidents.

Policy:
- /healthz and /readyz are open: a load balancer probes them, and they show no call data.
- No token configured: only clients on this machine (loopback) are served; everyone else gets 401.
- A token configured (IVR_HTTP_TOKEN or [http] token): every client needs it, loopback included,
  because a reverse proxy on the same machine would make every remote browser look local.
  Scripts and Prometheus send `Authorization: Bearer <token>`; a browser posts the token once to
  /login and then holds a cookie derived from it (HttpOnly, SameSite=Strict), never the token itself.
- Changes (incident add/end) from a browser also need the page's CSRF token, and an Origin, when sent,
  must be this server: another site cannot make a supervisor's browser post an incident. A script's
  change needs the token: without one configured, a Bearer header is refused, saying so.
A refusal is a 401 (403 for a change without the CSRF token) and one log line, never a stack trace.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from ivr.http.keys import ACCESS, WHO

log = logging.getLogger("ivr.http")

COOKIE = "ivr_board"
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
LOGIN_PATH = "/login"
BEARER = "bearer"
LOOPBACK = "loopback"
NO_TOKEN_FOR_SCRIPTS = (
    "a Bearer token was sent, but this engine has no token configured: scripts need one, set on the "
    "engine (IVR_HTTP_TOKEN in its environment, or [http] token in ivr.toml)"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _digest(key: str | bytes, message: str) -> str:
    raw = key.encode() if isinstance(key, str) else key
    return hmac.new(raw, message.encode(), hashlib.sha256).hexdigest()


def is_loopback(peer: str | None) -> bool:
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        return False


class Access:
    def __init__(self, token: str) -> None:
        self.token = token
        self._csrf_key = secrets.token_bytes(32)  # per process: a restart invalidates open forms

    @property
    def session_cookie(self) -> str:
        return _digest(self.token, "ivr-board-session")

    def token_matches(self, offered: str) -> bool:
        return bool(self.token) and hmac.compare_digest(offered.encode(), self.token.encode())

    def who(self, request: web.Request) -> tuple[str | None, str]:
        """(how the client is allowed: 'bearer', 'cookie:<session>', 'loopback'; or None) and why not."""
        if not self.token:
            if is_loopback(request.remote):
                return LOOPBACK, ""
            if _bearer(request) is not None:
                return None, f"{NO_TOKEN_FOR_SCRIPTS}; without one only this machine may connect"
            return None, "no token is configured (IVR_HTTP_TOKEN), so only this machine may connect"
        offered = _bearer(request)
        if offered is not None:
            return (BEARER, "") if self.token_matches(offered) else (None, "wrong bearer token")
        cookie = request.cookies.get(COOKIE, "")
        if cookie:
            if hmac.compare_digest(cookie.encode(), self.session_cookie.encode()):
                return f"cookie:{cookie}", ""
            return None, "stale or wrong session cookie"
        return None, "no token"

    def csrf_token(self, who: str) -> str:
        return _digest(self._csrf_key, who)

    def csrf_ok(self, request: web.Request, who: str, offered: str) -> tuple[bool, str]:
        if who == BEARER:
            return True, ""  # a browser cannot attach a bearer header to a cross-site request
        if who == LOOPBACK and _bearer(request) is not None:  # a script, not the board's own form
            return False, NO_TOKEN_FOR_SCRIPTS
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return False, f"cross-site request from {origin}"
        if not offered or not hmac.compare_digest(offered.encode(), self.csrf_token(who).encode()):
            return False, "missing or wrong CSRF token"
        return True, ""


def _bearer(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None without one."""
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    return offered.strip() if scheme.lower() == BEARER else None


def refuse(request: web.Request, why: str, status: int = 401, note: str = "") -> web.Response:
    """`note`: what the login form says above itself (ivr.http.page.LOGIN_NOTES)."""
    # A browser's first look at the board, before it has logged in, is no warning's business.
    first_look = request.method == "GET" and request.path in ("/", LOGIN_PATH) and not note
    level = logging.INFO if first_look else logging.WARNING
    log.log(level, "%d %s %s from %s: %s", status, request.method, request.path, request.remote, why)
    if request.path in ("/", LOGIN_PATH) and request.method in ("GET", "POST"):
        from ivr.http.page import html_response, login_page

        return html_response(login_page(note), status=status)
    return web.Response(status=status, text=f"{status}: {why}\n", headers={"WWW-Authenticate": "Bearer"})


def middleware(access: Access) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or (request.path == LOGIN_PATH and request.method == "POST"):
            return await handler(request)
        who, why = access.who(request)
        if who is None:  # without a token, a login form from afar could never succeed: it says so
            return refuse(request, why, note="" if access.token else "no token")
        request[WHO] = who
        return await handler(request)

    return check


async def login(request: web.Request) -> web.StreamResponse:
    """The browser's one use of the token: it comes in a form body and leaves as a derived cookie."""
    access: Access = request.app[ACCESS]
    form = await request.post()
    offered = str(form.get("token", ""))
    if not access.token:
        return refuse(request, "no token is configured; open the board from this machine", 403, "no token")
    if not access.token_matches(offered):
        return refuse(request, "wrong token at login", note="wrong")
    response = web.HTTPSeeOther("/")
    response.set_cookie(COOKIE, access.session_cookie, httponly=True, samesite="Strict", path="/")
    raise response
