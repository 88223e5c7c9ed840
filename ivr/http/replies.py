"""JSON answers as people read them: UTF-8 text, Kazakh and Russian as they are (not `\\u` escapes)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

dumps = functools.partial(json.dumps, ensure_ascii=False)


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)
