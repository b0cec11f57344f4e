"""The objects pyrt passes to a function's ``main``.

pyrt runs these very classes: inside ``main``, ``type(req) is function_types.Request``.
Install this package in your own environment for type hints and for unit tests that
call ``main`` directly::

    from function_types import Request, Response

    def test_main() -> None:
        result = main(Request(payload={"a": 1}), Response())
        assert result.status == 200

Under the open-runtimes v5 contract (``pyrt serve --contract v5``) ``main`` takes one
``Context``: ``context.req`` (a ``ContextRequest``), ``context.res`` (a
``ContextResponse``), ``context.log`` and ``context.error``::

    from function_types import Context, ContextRequest

    def test_v5_main() -> None:
        context = Context(ContextRequest(method="GET", url="http://localhost/?a=1"))
        output = main(context)
        assert output["statusCode"] == 200
        assert context.logs == []

Under the executor's v2 contract ``main(req, res)`` gets a ``LegacyRequest`` and a
``LegacyResponse``.
"""

from __future__ import annotations

# typing is for type checkers only: importing it costs a fresh interpreter ~20 ms, and
# pyrt imports this module before every worker's first execution. (With postponed
# annotations nothing below evaluates these names at run time.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypedDict, Union

    HeaderValue = Union[str, List[str]]

    class ContextOutput(TypedDict):
        """What the ``context.res`` methods return (and ``main`` returns in turn)."""

        body: Union[bytes, str]
        statusCode: int
        headers: Dict[str, HeaderValue]

else:

    class ContextOutput(dict):
        """What the ``context.res`` methods return: a dict with ``body``,
        ``statusCode`` and ``headers`` (a class of its own, so that pyrt tells it
        from a dict that a ``main(req, res)`` function returns as JSON)."""

        __slots__ = ()

__all__ = [
    "Request",
    "Response",
    "Result",
    "Context",
    "ContextRequest",
    "ContextResponse",
    "ContextOutput",
    "LegacyRequest",
    "LegacyResponse",
]

_UNSET: Any = object()


class Request:
    """What the execution request carried.

    ``env`` and ``headers`` are the request body's ``env`` and ``headers`` objects
    (executors send strings; a JSON ``null`` stays ``None``); ``payload`` is its
    ``payload``, any JSON value, unchanged (``{}`` when absent).
    """

    __slots__ = ("env", "headers", "payload")

    env: Dict[str, Any]
    headers: Dict[str, Any]
    payload: Any

    def __init__(
        self,
        payload: Any = _UNSET,
        env: Optional[Dict[str, Any]] = None,
        headers: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.payload = {} if payload is _UNSET else payload
        self.env = {} if env is None else env
        self.headers = {} if headers is None else headers

    def __repr__(self) -> str:
        return (
            f"Request(payload={self.payload!r}, env={self.env!r}, "
            f"headers={self.headers!r})"
        )


class Result:
    """What ``res.send`` and ``res.json`` return, and ``main`` returns in turn.

    ``body`` is the text (``str``) or bytes for ``send``, the object to serialise for
    ``json``; ``is_json`` tells which. ``headers`` are added to the HTTP response.
    """

    __slots__ = ("body", "status", "headers", "is_json")

    body: Any
    status: int
    headers: Dict[str, str]
    is_json: bool

    def __init__(
        self,
        body: Any,
        status: int = 200,
        headers: Optional[Mapping[str, str]] = None,
        is_json: bool = False,
    ) -> None:
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(f"status must be an int, not {type(status).__name__}")
        if not 200 <= status <= 599:
            raise ValueError(f"status must be from 200 to 599, got {status}")
        if headers is not None and not hasattr(headers, "keys"):
            raise TypeError(f"headers must be a dict, not {type(headers).__name__}")
        self.body = body
        self.status = status
        self.headers = dict(headers) if headers else {}
        self.is_json = is_json

    @property
    def content_type(self) -> str:
        """The Content-Type pyrt sends unless ``headers`` sets one."""
        return "application/json" if self.is_json else "text/plain; charset=utf-8"

    def __repr__(self) -> str:
        kind = "json" if self.is_json else "send"
        return f"Result({kind}, status={self.status}, body={self.body!r})"


class Response:
    """Builds the answer: ``return res.json({...})`` or ``return res.send("text")``.

    If ``main`` returns ``None`` after calling one of them, the last call is the answer.
    """

    __slots__ = ("last",)

    last: Optional[Result]

    def __init__(self) -> None:
        self.last = None

    def send(
        self,
        text: Union[str, bytes],
        status: int = 200,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Result:
        """A text answer (``text/plain; charset=utf-8``; bytes are sent as they are)."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise TypeError(
                f"res.send() takes str or bytes, not {type(text).__name__}; "
                "use res.json() for other values"
            )
        self.last = Result(text, status, headers, is_json=False)
        return self.last

    def json(
        self,
        obj: Any,
        status: int = 200,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Result:
        """A JSON answer (``application/json``)."""
        self.last = Result(obj, status, headers, is_json=True)
        return self.last


# ---------------------------------------------------------------- open-runtimes v5


class ContextRequest:
    """``context.req``: the HTTP request, as open-runtimes' v5 contract describes it.

    ``headers`` has lower-case names (the executor's ``x-open-runtimes-*`` headers are
    not among them; several lines of one header are joined with ``", "``). ``query``
    splits ``query_string`` on ``&`` and each part on its first ``=``. ``body`` is
    ``body_json`` when the content type is JSON (``{}`` for an empty body), else
    ``body_text``.
    """

    __slots__ = (
        "body_binary",
        "headers",
        "method",
        "url",
        "path",
        "port",
        "query",
        "query_string",
        "scheme",
        "host",
    )

    body_binary: bytes
    headers: Dict[str, str]
    method: str
    url: str
    path: str
    port: int
    query: Dict[str, str]
    query_string: str
    scheme: str
    host: str

    def __init__(
        self,
        method: str = "GET",
        url: str = "http://localhost/",
        headers: Optional[Dict[str, str]] = None,
        body: Union[bytes, str] = b"",
    ) -> None:
        """A request for unit tests: the URL is split as the server splits it."""
        self.method = method
        self.headers = {} if headers is None else headers
        self.body_binary = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        scheme, _, rest = url.partition("://")
        authority, slash, target = rest.partition("/")
        host, port = split_host(authority, scheme)
        self._set_target(scheme, host, port, slash + target)

    def _set_target(self, scheme: str, host: str, port: int, target: str) -> None:
        target = target.partition("#")[0] or "/"
        raw_path, _, raw_query = target.partition("?")
        self.scheme = scheme
        self.host = host
        self.port = port
        # Percent-decoded, as open-runtimes' server gives them; ``query`` is split
        # before decoding, so an encoded & or = stays inside its value.
        self.path = unquote(raw_path)
        self.query_string = unquote(raw_query)
        self.query = parse_query(raw_query)
        default = 443 if scheme == "https" else 80
        self.url = f"{scheme}://{host}" + (f":{port}" if port != default else "") + self.path
        if self.query_string:
            self.url += "?" + self.query_string

    @property
    def body_text(self) -> str:
        """The body as UTF-8 text (invalid UTF-8 raises ``UnicodeDecodeError``)."""
        return self.body_binary.decode("utf-8")

    @property
    def body_raw(self) -> str:
        """The same as ``body_text``."""
        return self.body_text

    @property
    def body_json(self) -> Any:
        """The body parsed as JSON (invalid JSON raises ``ValueError``)."""
        import json

        return json.loads(self.body_text)

    @property
    def body(self) -> Any:
        """``body_json`` for a JSON content type (``{}`` when empty), else ``body_text``."""
        content_type = self.headers.get("content-type", "text/plain").lower()
        if content_type.startswith("application/json"):
            return self.body_json if self.body_binary else {}
        return self.body_text

    # A main(req, res) function gets context.req, with the seed's names as well.
    @property
    def payload(self) -> Any:
        """For a ``main(req, res)`` function: the same as ``body``."""
        return self.body

    @property
    def env(self) -> Dict[str, str]:
        """For a ``main(req, res)`` function: the environment (``os.environ``)."""
        import os

        return dict(os.environ)

    def __repr__(self) -> str:
        return f"ContextRequest({self.method} {self.url})"


def split_host(authority: str, scheme: str) -> Tuple[str, int]:
    """``host[:port]`` to the host and the port (the scheme's default when absent)."""
    default = 443 if scheme == "https" else 80
    if authority.startswith("["):  # an IPv6 literal: [::1]:3000
        end = authority.find("]")
        host, rest = authority[: end + 1], authority[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = authority.partition(":")
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else default
    return host, port


def unquote(text: str) -> str:
    """%XX escapes decoded (as UTF-8); ``+`` stays ``+``."""
    if "%" not in text:
        return text
    from urllib.parse import unquote as _unquote

    return _unquote(text, errors="surrogateescape")


def parse_query(query_string: str) -> Dict[str, str]:
    """``a=1&b&c=x=y`` to ``{"a": "1", "b": "", "c": "x=y"}``; empty names skipped;
    each name and value percent-decoded after the split."""
    query: Dict[str, str] = {}
    for part in query_string.split("&"):
        name, eq, value = part.partition("=")
        if name:
            query[unquote(name)] = unquote(value)
    return query


class ContextResponse:
    """``context.res``: each method returns the answer, which ``main`` must return.

    ``headers`` values are strings, or lists of strings for a header sent several
    times (two ``set-cookie`` lines, say).
    """

    __slots__ = ("last",)

    last: Optional[ContextOutput]

    def __init__(self) -> None:
        self.last = None

    def _output(
        self,
        body: Union[bytes, str],
        status_code: int,
        headers: Optional[Mapping[str, HeaderValue]],
    ) -> ContextOutput:
        out = ContextOutput(
            body=body, statusCode=status_code, headers=dict(headers) if headers else {}
        )
        self.last = out
        return out

    def binary(
        self,
        bytes: Union[bytes, bytearray],
        statusCode: int = 200,
        headers: Optional[Mapping[str, HeaderValue]] = None,
    ) -> ContextOutput:
        """Bytes as they are (content type ``text/plain`` unless ``headers`` say)."""
        return self._output(bytes_(bytes), statusCode, headers)

    def text(
        self,
        body: str,
        statusCode: int = 200,
        headers: Optional[Mapping[str, HeaderValue]] = None,
    ) -> ContextOutput:
        """Text, sent as UTF-8."""
        return self._output(body.encode("utf-8"), statusCode, headers)

    def json(
        self,
        obj: Any,
        statusCode: int = 200,
        headers: Optional[Mapping[str, HeaderValue]] = None,
    ) -> ContextOutput:
        """Compact JSON, ``application/json``."""
        import json

        merged = dict(headers) if headers else {}
        merged["content-type"] = "application/json"
        return self.text(json.dumps(obj, separators=(",", ":")), statusCode, merged)

    def empty(self) -> ContextOutput:
        """No content: 204."""
        return self.text("", 204, {})

    def redirect(
        self,
        url: str,
        statusCode: int = 301,
        headers: Optional[Mapping[str, HeaderValue]] = None,
    ) -> ContextOutput:
        """A redirect to ``url`` (``location``)."""
        merged = dict(headers) if headers else {}
        merged["location"] = url
        return self.text("", statusCode, merged)

    def send(
        self,
        body: Union[bytes, str],
        statusCode: int = 200,
        headers: Optional[Mapping[str, HeaderValue]] = None,
    ) -> ContextOutput:
        """Deprecated by open-runtimes: text or bytes as given."""
        return self._output(body, statusCode, headers)


def bytes_(value: Union[bytes, bytearray]) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"res.binary() takes bytes or bytearray, not {type(value).__name__}")
    return bytes(value)


LOG_LIMIT = 8000


def format_log(messages: Tuple[Any, ...]) -> str:
    """``context.log``'s line: the messages joined by one space, dicts, lists and
    tuples as compact JSON, cut at 8,000 characters."""
    import json

    parts = []
    for message in messages:
        if isinstance(message, (list, dict, tuple)):
            parts.append(json.dumps(message, separators=(",", ":")))
        else:
            parts.append(str(message))
    line = " ".join(parts)
    if len(line) > LOG_LIMIT:
        line = line[:LOG_LIMIT] + "... Log truncated due to size limit (8000 characters)"
    return line


class Context:
    """What ``main(context)`` gets: ``req``, ``res``, ``log`` and ``error``.

    Built by pyrt for each execution, its lines go to the execution's log files. Built
    in a unit test, ``logs`` and ``errors`` collect them.
    """

    __slots__ = ("req", "res", "logs", "errors", "_sink")

    req: ContextRequest
    res: ContextResponse
    logs: List[str]
    errors: List[str]

    def __init__(
        self,
        req: Optional[ContextRequest] = None,
        res: Optional[ContextResponse] = None,
        sink: Optional[Callable[[int, str], None]] = None,
    ) -> None:
        self.req = ContextRequest() if req is None else req
        self.res = ContextResponse() if res is None else res
        self.logs = []
        self.errors = []
        self._sink = sink

    def log(self, *messages: Any) -> None:
        """One line to the execution's logs."""
        line = format_log(messages)
        if self._sink is not None:
            self._sink(0, line)
        else:
            self.logs.append(line)

    def error(self, *messages: Any) -> None:
        """One line to the execution's errors."""
        line = format_log(messages)
        if self._sink is not None:
            self._sink(1, line)
        else:
            self.errors.append(line)


# ------------------------------------------------------------ the executor's v2


class LegacyRequest:
    """``req`` under the executor's v2 contract: the body's ``variables`` (also as
    ``env``), ``payload`` (a string) and ``headers``."""

    __slots__ = ("variables", "payload", "headers")

    variables: Dict[str, Any]
    payload: Any
    headers: Dict[str, Any]

    def __init__(
        self,
        variables: Optional[Dict[str, Any]] = None,
        payload: Any = "",
        headers: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.variables = {} if variables is None else variables
        self.payload = payload
        self.headers = {} if headers is None else headers

    @property
    def env(self) -> Dict[str, Any]:
        """The same as ``variables``."""
        return self.variables


class LegacyResponse:
    """``res`` under v2: ``send`` and ``json`` set the answer; returning it is optional."""

    __slots__ = ("response", "status", "is_set")

    response: Any
    status: int
    is_set: bool

    def __init__(self) -> None:
        self.response = None
        self.status = 200
        self.is_set = False

    def send(self, text: Any, status: int = 200) -> "LegacyResponse":
        """The answer's ``response`` is ``text``."""
        self.response, self.status, self.is_set = text, status, True
        return self

    def json(self, obj: Any, status: int = 200) -> "LegacyResponse":
        """The answer's ``response`` is ``obj`` (as JSON)."""
        self.response, self.status, self.is_set = obj, status, True
        return self
