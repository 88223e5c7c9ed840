"""The board's one page: board.html beside this module, with this engine's settings filled in.

Self-contained (no CDN, no web font, the chart drawn as SVG by the page itself), so it works on a
control-room screen with no internet. A strict Content-Security-Policy lets only its own script run.
"""

from __future__ import annotations

import functools
import json
import secrets
from importlib import resources
from typing import Any

import attrs
from aiohttp import web

from ivr.http.keys import ACCESS, ENGINE_NAME, TOPICS, WHO

CSP = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@functools.cache
def _template() -> str:
    return resources.files("ivr.http").joinpath("board.html").read_text(encoding="utf-8")


def render_board(config: dict[str, Any], nonce: str) -> str:
    # "</" cannot end the JSON's <script> element early once escaped.
    data = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    return _template().replace("{{CONFIG}}", data).replace("{{NONCE}}", nonce)


def html_response(text: str, nonce: str = "", status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=text,
        content_type="text/html",
        headers={
            "Content-Security-Policy": CSP.format(nonce=nonce or secrets.token_urlsafe(8)),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


async def board(request: web.Request) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    config = {
        "engine": request.app[ENGINE_NAME],
        "csrf": request.app[ACCESS].csrf_token(request[WHO]),
        "topics": [attrs.asdict(topic) for topic in request.app[TOPICS]()],
    }
    return html_response(render_board(config, nonce), nonce)


# Why the form is shown again, in both languages: a wrong token, or a board that has none to check.
LOGIN_NOTES = {
    "wrong": "Токен қате / Неверный токен",
    "no token": (
        "Бұл серверде токен бапталмаған: тақтаны осы компьютерден ашыңыз (IVR_HTTP_TOKEN) / "
        "На сервере не задан токен: откройте табло с этого компьютера (IVR_HTTP_TOKEN)"
    ),
}


def login_page(note: str = "") -> str:
    """Shown with the 401: both languages at once, since the page does not know the reader's yet."""
    said = f'<div id="note" style="color:#ff6b6b">{LOGIN_NOTES[note]}</div>' if note else ""
    return f"""<!doctype html><html lang="kk"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>1414 IVR</title><style>body{{background:#0f1720;color:#e8eef4;font:1.3rem sans-serif;display:grid;
place-items:center;height:100vh;margin:0}}form{{display:grid;gap:.8rem;max-width:40rem}}input,button{{font-size:1.2rem;padding:.4rem}}
</style></head><body><form method="post" action="/login"><div>1414 IVR · Кіру / Вход</div>{said}
<label>Токен / Токен доступа <input type="password" name="token" id="token" autofocus></label>
<button type="submit">Кіру / Войти</button></form></body></html>"""
