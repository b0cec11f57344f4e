"""The objects pyrt passes to a function's ``main(req, res)``.

pyrt runs these very classes: inside ``main``, ``type(req) is function_types.Request``.
Install this package in your own environment for type hints and for unit tests that
call ``main`` directly::

    from function_types import Request, Response

    def test_main() -> None:
        result = main(Request(payload={"a": 1}), Response())
        assert result.status == 200
"""

from __future__ import annotations

# typing is for type checkers only: importing it costs a fresh interpreter ~20 ms, and
# pyrt imports this module before every worker's first execution. (With postponed
# annotations nothing below evaluates these names at run time.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Mapping, Optional, Union

__all__ = ["Request", "Response", "Result"]

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
