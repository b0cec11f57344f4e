"""The subset of pyrt's HTTP contract (CONTRACT.md section 2) that the anchor apps share.

Framework-independent: each app (wsgi_app, aiohttp_app, asgi_app) only moves bytes
between its server and `execute()`. What it implements, as pyrt does:

- the key (`x-internal-challenge`) compared in constant time (hmac.compare_digest)
  before the body is read: 401 `{"message": "Unauthorized", "code": 401}`;
- a declared body over MAX_BODY (20 MiB, pyrt's default): 413;
- the body is JSON: `path` (default the code dir), `file` (default index.py), `env`,
  `headers`, `payload` given as `req.env`, `req.headers`, `req.payload`; empty body
  500, not an object 400, a file outside the code dir or missing 500;
- the module is imported once per process and cached (by resolved path);
- `main(req, res)` with `res.json(obj, status, headers)` / `res.send(text, ...)`, a
  returned dict/list (JSON), str (text) or bytes; any exception 500 with the traceback;
  on the event-loop servers (aiohttp_app, asgi_app: execute_async) an `async def main`
  is awaited on the loop, so executions that wait overlap.

Lean on purpose: no timeout (the servers cannot stop running code), no reload on a
changed file, no output capture. Configuration from the environment:
INTERNAL_RUNTIME_KEY (required) and BENCH_CODE_DIR (default /usr/code).
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.util
import inspect
import json
import os
import sys
import traceback
from types import ModuleType
from typing import Any, Callable, Optional, Union

KEY = os.environ["INTERNAL_RUNTIME_KEY"].encode()
CODE_DIR = os.path.realpath(os.environ.get("BENCH_CODE_DIR", "/usr/code"))
MAX_BODY = 20 * 1024 * 1024
DEFAULT_FILE = "index.py"

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
BINARY_TYPE = "application/octet-stream"

Headers = list[tuple[str, str]]
Answer = tuple[int, Headers, bytes]

_modules: dict[str, ModuleType] = {}


class Request:
    __slots__ = ("env", "headers", "payload")

    def __init__(self, env: dict[str, Any], headers: dict[str, Any], payload: Any) -> None:
        self.env = env
        self.headers = headers
        self.payload = payload


class Result:
    __slots__ = ("status", "content_type", "body", "headers")

    def __init__(self, status: int, content_type: str, body: bytes,
                 headers: Optional[dict[str, Any]]) -> None:
        self.status = status
        self.content_type = content_type
        self.body = body
        self.headers = headers


class Response:
    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: Optional[Result] = None

    def send(self, text: str, status: int = 200,
             headers: Optional[dict[str, Any]] = None) -> Result:
        self.last = Result(status, TEXT_TYPE, str(text).encode(), headers)
        return self.last

    def json(self, obj: Any, status: int = 200,
             headers: Optional[dict[str, Any]] = None) -> Result:
        self.last = Result(status, JSON_TYPE, json.dumps(obj).encode(), headers)
        return self.last


def error(status: int, message: str) -> Answer:
    body = json.dumps({"message": message, "code": status}).encode()
    return status, [("Content-Type", JSON_TYPE)], body


UNAUTHORIZED = error(401, "Unauthorized")
TOO_LARGE = error(413, "Request body too large")


def authorized(value: Optional[str]) -> bool:
    """Constant-time comparison of the challenge header with the key."""
    given = value.encode("latin-1", "replace") if value is not None else b""
    return hmac.compare_digest(given, KEY)


def load(path: str, file: str) -> ModuleType:
    """The module at path/file, imported once and cached. Raises LookupError (with a
    message naming the file) when it is missing or outside the code dir."""
    target = os.path.join(path, file)
    module = _modules.get(target)
    if module is not None:
        return module
    real = os.path.realpath(target)
    if not (real == CODE_DIR or real.startswith(CODE_DIR + os.sep)) or not os.path.isfile(real):
        raise LookupError(f"file not found or outside the code dir: {target}")
    folder = os.path.dirname(real)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"bench_fn_{len(_modules)}", real)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _modules[target] = module
    return module


def _answer(out: Any, res: Response) -> Answer:
    if out is None:
        out = res.last
    if isinstance(out, Result):
        headers = [("Content-Type", out.content_type)]
        if out.headers:
            for k, v in out.headers.items():
                if k.lower() == "content-type":
                    headers[0] = (k, str(v))
                else:
                    headers.append((k, str(v)))
        return out.status, headers, out.body
    if isinstance(out, (dict, list)):
        return 200, [("Content-Type", JSON_TYPE)], json.dumps(out).encode()
    if isinstance(out, str):
        return 200, [("Content-Type", TEXT_TYPE)], out.encode()
    if isinstance(out, bytes):
        return 200, [("Content-Type", BINARY_TYPE)], out
    if out is None:
        return error(500, "main returned no response; return res.send(...) or res.json(...)")
    return error(500, f"main returned an unsupported value: {type(out).__name__}")


class Call:
    """An authorised, parsed request ready to run: main, and the req and res it gets."""
    __slots__ = ("fn", "req", "res")

    def __init__(self, fn: Callable[[Request, Response], Any], req: Request,
                 res: Response) -> None:
        self.fn = fn
        self.req = req
        self.res = res


def prepare(body: bytes) -> Union[Call, Answer]:
    """The call for an authorised request with this body, or the error answer."""
    if not body:
        return error(500, "no data received")
    try:
        data = json.loads(body)
    except ValueError as exc:
        return error(400, f"body is not JSON: {exc}")
    if not isinstance(data, dict):
        return error(400, "body is not a JSON object")
    try:
        module = load(data.get("path") or CODE_DIR, data.get("file") or DEFAULT_FILE)
    except LookupError as exc:
        return error(500, str(exc))
    except BaseException:  # noqa: BLE001 - the import's traceback is the answer
        return error(500, traceback.format_exc())
    fn = getattr(module, "main", None)
    if not callable(fn):
        return error(500, "function not found, Did you forget to name it `main`?")
    env = data.get("env") or {}
    headers = data.get("headers") or {}
    return Call(fn, Request(env, headers, data.get("payload", {})), Response())


def execute(body: bytes) -> Answer:
    """One execution for an authorised request with this body (the WSGI app)."""
    call = prepare(body)
    if not isinstance(call, Call):
        return call
    try:
        return _answer(call.fn(call.req, call.res), call.res)
    except BaseException:  # noqa: BLE001 - any escape is a 500 with its traceback
        return error(500, traceback.format_exc())


async def execute_async(body: bytes) -> Answer:
    """execute() for the apps on an event loop: an `async def main` is awaited there, so
    executions that wait overlap (the I/O-bound workload)."""
    call = prepare(body)
    if not isinstance(call, Call):
        return call
    try:
        out = call.fn(call.req, call.res)
        if inspect.isawaitable(out):
            out = await out
        return _answer(out, call.res)
    except asyncio.CancelledError:
        raise
    except BaseException:  # noqa: BLE001 - any escape is a 500 with its traceback
        return error(500, traceback.format_exc())
