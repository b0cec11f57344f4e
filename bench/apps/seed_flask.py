"""The original runtime's protocol as the seed describes it: a Flask development server
(`flask run`) that imports the function module anew for every request.

    flask --app bench/apps/seed_flask.py run --host 127.0.0.1 --port P

Written from the seed README and the contract: POST to any path, header
`x-internal-challenge` = INTERNAL_RUNTIME_KEY (constant-time compare; 401 JSON), JSON
body {path, file, env, headers, payload, timeout}, `main(req, res)`; `timeout` is not
enforced (the seed says so). Environment: INTERNAL_RUNTIME_KEY, BENCH_CODE_DIR.
Access logging is off, as for every server in the benchmark.
"""

from __future__ import annotations

import hmac
import importlib.util
import logging
import os
import traceback
from typing import Any, Optional

from flask import Flask, Response as FlaskResponse, jsonify, request

KEY = os.environ["INTERNAL_RUNTIME_KEY"].encode()
CODE_DIR = os.environ.get("BENCH_CODE_DIR", "/usr/code")

logging.getLogger("werkzeug").setLevel(logging.ERROR)
app = Flask(__name__)


class Request:
    def __init__(self, payload: Any, env: dict[str, Any], headers: dict[str, Any]) -> None:
        self.payload = payload
        self.env = env
        self.headers = headers


class Response:
    def send(self, text: str, status: int = 200,
             headers: Optional[dict[str, Any]] = None) -> FlaskResponse:
        return FlaskResponse(str(text), status=status, headers=headers,
                             content_type="text/plain; charset=utf-8")

    def json(self, obj: Any, status: int = 200,
             headers: Optional[dict[str, Any]] = None) -> FlaskResponse:
        resp = jsonify(obj)
        resp.status_code = status
        if headers:
            resp.headers.update(headers)
        return resp


def fail(status: int, message: str) -> tuple[FlaskResponse, int]:
    return jsonify({"message": message, "code": status}), status


@app.route("/", defaults={"u_path": ""}, methods=["POST"])
@app.route("/<path:u_path>", methods=["POST"])
def handler(u_path: str) -> Any:
    given = (request.headers.get("x-internal-challenge") or "").encode("latin-1", "replace")
    if not hmac.compare_digest(given, KEY):
        return fail(401, "Unauthorized")
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        return fail(400, "body is not a JSON object")
    path = os.path.join(data.get("path") or CODE_DIR, data.get("file") or "index.py")
    req = Request(data.get("payload", {}), data.get("env") or {}, data.get("headers") or {})
    try:
        # As the seed's runtime did: the module is loaded from its file on every request.
        spec = importlib.util.spec_from_file_location("user_function", path)
        if spec is None or spec.loader is None:
            return fail(500, f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main(req, Response())
    except Exception:  # noqa: BLE001 - the traceback is the answer
        return fail(500, traceback.format_exc())
