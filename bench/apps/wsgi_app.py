"""Lean WSGI app for the contract subset (contract.py), for uWSGI and gunicorn sync.

    uwsgi --plugin python3 --http11-socket 127.0.0.1:P --master --processes 2 \
          --wsgi-file bench/apps/wsgi_app.py
    gunicorn -w 2 -b 127.0.0.1:P --chdir bench/apps wsgi_app:app

Environment: INTERNAL_RUNTIME_KEY, BENCH_CODE_DIR.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import contract  # noqa: E402 - after the path is set

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed",
           413: "Payload Too Large", 500: "Internal Server Error"}


def _status(code: int) -> str:
    return f"{code} {REASONS.get(code, 'Status')}"


def _reply(start_response: Callable[..., Any], answer: contract.Answer) -> Iterable[bytes]:
    status, headers, body = answer
    start_response(_status(status), headers + [("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] != "POST":
        return _reply(start_response, contract.error(405, "Method not allowed"))
    if not contract.authorized(environ.get("HTTP_X_INTERNAL_CHALLENGE")):
        return _reply(start_response, contract.UNAUTHORIZED)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _reply(start_response, contract.error(400, "invalid Content-Length"))
    if length > contract.MAX_BODY:
        return _reply(start_response, contract.TOO_LARGE)
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    return _reply(start_response, contract.execute(body))


application = app
