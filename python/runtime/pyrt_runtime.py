"""pyrt's Python side: runs one execution inside a worker.

Embedded in the pyrt binary and imported once in the zygote, before any worker is
forked. The C worker loop reads a CALL frame and calls ``execute(request_id, body)``
(the seed and v2 contracts: a JSON body) or ``execute_http(request_id, method, target,
headers, body)`` (v5: the HTTP request itself); what it returns becomes the RESULT
frame: ``(status, headers, body, flags)``. With --async-slots, the first CALL flagged
TASK hands the worker to ``serve_tasks``: from then on its event loop reads the
channel and runs each execution as a task, many at once (see "tasks" below).

The master has already checked the secret, the framing and (seed, v2) that the body is
a JSON object with a valid ``timeout``; everything about the function itself is decided
here. Under v5, what must not reach the public (tracebacks, reasons) goes to the
execution's errors file through ``_pyrt_worker.log`` and the body stays empty.

Each contract's execution reads as its steps: the request, the function (located,
imported, its ``main``), the call, the answer. Every step that can fail raises one of
the exceptions below, and the execution turns it into that contract's error answer.
An execution is a generator: where ``main`` returned an awaitable, it yields it, and
its driver awaits it -- to completion for the one-at-a-time loop, on the shared event
loop for a task -- so each contract's rules are written once for both.
"""

from __future__ import annotations

# importlib.util and traceback are not imported: start-up counts (cold start to the
# first answer), and importlib.util pulls in contextlib and more. What it would give is
# in the import system's own modules, loaded before any code runs; traceback is
# imported when an error needs it.
import _frozen_importlib as _bootstrap
import _frozen_importlib_external as _bootstrap_external
import _imp
import contextvars
import functools
import io
import json
import marshal
import os
import stat as _stat
import sys

import _pyrt_worker
import function_types

# typing is for the type checker only (mypy --strict, see mypy.ini): importing it
# would cost every cold start, and with postponed annotations nothing below evaluates
# these names at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    import selectors
    from types import CodeType, ModuleType
    from typing import (
        Any,
        Awaitable,
        Callable,
        Dict,
        Generator,
        List,
        Mapping,
        Optional,
        Sequence,
        Tuple,
        Union,
    )

    # What an execution returns to the C worker: (status, headers, body, flags).
    Answer = Tuple[int, List[Tuple[str, str]], bytes, int]
    Main = Callable[..., Any]
    # An execution's steps: it yields what main returned when that is awaitable and is
    # sent back its value (or thrown its exception); it returns the answer.
    Steps = Generator[Awaitable[Any], Any, Answer]
    # A CALL from the event loop: (seq, request id, body, None or (method, target,
    # headers), whether it is a task or runs alone).
    TaskCall = Tuple[
        int, str, bytes, Optional[Tuple[bytes, bytes, List[Tuple[bytes, bytes]]]], bool
    ]

_Request = function_types.Request
_Response = function_types.Response
_Result = function_types.Result

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_BYTES = "application/octet-stream"
_RESERVED_HEADERS = frozenset(
    ("content-length", "transfer-encoding", "connection", "x-request-id")
)
_NO_MAIN = "function not found, Did you forget to name it `main`?"
_NO_RESPONSE = "main returned no response; return res.send(...) or res.json(...)"

_code_root = "/"
_default_file: Optional[str] = None
_modules: Dict[str, Tuple[ModuleType, int, int]] = {}  # path -> (module, mtime_ns, size)
_site_dirs: set[str] = set()
# (path, file) -> (resolved path inside the code dir, its folder)
_targets: Dict[Tuple[str, str], Tuple[str, str]] = {}
_loop: Optional[asyncio.AbstractEventLoop] = None
_cwd: Optional[str] = None
_wrote = False  # did this execution write to sys.stdout / sys.stderr?
_OUTPUT_FLAG = 0x2  # PROTO_RESULT_OUTPUT: the master reads the pipes before answering
_RECYCLE_FLAG = 0x1  # PROTO_RESULT_RECYCLE: replace this worker after the answer
_ASYNC_FLAG = 0x4  # PROTO_RESULT_ASYNC: main was a coroutine function
_SYNC_FLAG = 0x8  # PROTO_RESULT_SYNC: main ran and returned no awaitable
_hit_memory_limit = False
_streams: List[Optional[_TrackedStream]] = [None, None]  # sys.stdout, sys.stderr as installed
_contract = "seed"
_forced_headers: Dict[str, str] = {}  # v5: OPEN_RUNTIMES_HEADERS, lower-case names
# v2: [stdout parts, stderr parts] of the execution running (per task: a context var)
_capture: contextvars.ContextVar[Optional[List[List[str]]]] = contextvars.ContextVar(
    "pyrt_capture", default=None
)
# The task this code runs for (its CALL's seq); 0 outside tasks.
_task_seq: contextvars.ContextVar[int] = contextvars.ContextVar("pyrt_task_seq", default=0)
# Set when main ran and returned something that is not awaitable (the SYNC flag).
_ran_sync: contextvars.ContextVar[bool] = contextvars.ContextVar("pyrt_ran_sync", default=False)
_arity: Dict[Main, int] = {}  # main -> 1 (main(context)) or 2 (main(req, res))


class _BadRequest(Exception):
    """The request itself is wrong (a 400): the message says how."""


class _NotRunnable(Exception):
    """The function cannot run: its file is outside the code directory, missing or not a
    file, or importing it failed, or it has no `main`. The message says which."""


class _BadResponse(Exception):
    """What main returned cannot be sent (a 500): the message says why."""


# ------------------------------------------------------------ the worker's set-up


class _TrackedStream(io.TextIOWrapper):
    """sys.stdout / sys.stderr: written straight through to fds 1 and 2 (pipes to the
    master), noting that something was written, so the master knows to read them
    before the answer leaves (their lines then carry this execution's id). What a task
    writes (--async-slots) goes to the master as OUTPUT frames naming its execution
    instead, whole lines at a time: the pipes cannot say whose a line is. (Checked here,
    not by swapping sys.stdout: a logging handler made at import holds this object.)"""

    def write(self, s: str) -> int:
        global _wrote
        stream = 1 if self is _streams[1] else 0
        capture = _capture.get()
        if capture is not None:  # v2: the answer's envelope carries it too
            capture[stream].append(str(s))
        seq = _task_seq.get()
        if seq:
            return _task_write(seq, stream, str(s))
        _wrote = True
        return super().write(s)


def _install_streams() -> None:
    for index, (name, fd) in enumerate((("stdout", 1), ("stderr", 2))):
        raw = io.FileIO(fd, "w", closefd=False)
        # Each line goes to the pipe as it is printed: output written before a hang,
        # a crash or a deadline must reach the log too.
        stream = _TrackedStream(
            io.BufferedWriter(raw),
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=True,
        )
        setattr(sys, name, stream)
        _streams[index] = stream


def configure(code_root: str, default_file: Optional[str], contract: str = "seed") -> None:
    """Called once in the zygote: the served folder, its default entry file and the
    contract (seed, v5 or v2)."""
    global _code_root, _default_file, _cwd, _contract, _forced_headers
    _code_root = os.path.realpath(code_root)
    _default_file = default_file or None
    _contract = contract
    if contract == "v5":
        _forced_headers = _parse_forced_headers(os.environ.get("OPEN_RUNTIMES_HEADERS"))
        # v5 functions are mostly `async def main` (open-runtimes' own are): asyncio is
        # imported here once, shared by every worker, not after each fork (~100 ms and
        # ~8 MiB a worker). It starts no thread.
        import asyncio  # noqa: F401
    _add_function_dir(_code_root)
    os.chdir(_code_root)
    _cwd = _code_root
    _install_streams()


def preload() -> None:
    """--preload: import the default entry point now, in the zygote."""
    if _default_file is None:
        return
    path = os.path.realpath(os.path.join(_code_root, _default_file))
    _load(path, os.stat(path))


def after_fork(private_tmp: Optional[str] = None) -> None:
    """In each new worker: a writable HOME and TMPDIR for this user. private_tmp is the
    worker's own temporary folder (empty, 0700), when the master made one: it is HOME
    too when the server's is not writable, so that nothing a function leaves in HOME
    (a .netrc, a cache) reaches the next worker or the next server with that uid."""
    home = os.environ.get("HOME")
    if not home or not _writable_dir(home):
        os.environ["HOME"] = private_tmp or _private_dir("home")
    if private_tmp:
        _use_tmpdir(private_tmp)
        return
    tmp = os.environ.get("TMPDIR")
    if not tmp or not _writable_dir(tmp):
        os.environ["TMPDIR"] = "/tmp" if _writable_dir("/tmp") else _private_dir("tmp")


def _use_tmpdir(path: str) -> None:
    """TMPDIR, and TEMP and TMP (which tempfile and other tools read when TMPDIR is
    unset), name the worker's folder; so does tempfile's cached choice, which an import in
    the zygote (a --preload) may have made there already."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        os.environ[name] = path
    if "tempfile" in sys.modules:  # else it reads TMPDIR when first asked
        import tempfile

        tempfile.tempdir = path


def _writable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _private_dir(name: str) -> str:
    """/tmp/pyrt-UID/NAME, refusing a base that someone else created."""
    base = f"/tmp/pyrt-{os.getuid()}"
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(base)
    if st.st_uid != os.getuid() or not os.path.isdir(base) or os.path.islink(base):
        import tempfile

        base = tempfile.mkdtemp(prefix="pyrt-")
    path = os.path.join(base, name)
    os.makedirs(path, 0o700, exist_ok=True)
    return path


def _add_function_dir(folder: str) -> None:
    """The function's folder and its runtime-env's site-packages go on sys.path."""
    if folder not in sys.path:
        sys.path.insert(0, folder)
    if folder in _site_dirs:
        return
    _site_dirs.add(folder)
    lib = os.path.join(folder, "runtime-env", "lib")
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site_packages = os.path.join(lib, version, "site-packages")
    if os.path.isdir(site_packages):
        import site

        site.addsitedir(site_packages)


# ------------------------------------------------------------ the function: located, imported


def _locate(path: str, file: str) -> Tuple[str, str, os.stat_result]:
    """The file to run: (its resolved path, its folder, its stat) -- one stat per
    execution. Resolving costs a stat per path component: a pair once found inside the
    code directory is remembered (a symlink changed later is not seen until a
    restart)."""
    known = _targets.get((path, file))
    if known is not None:
        target, folder = known
    else:
        target = os.path.realpath(os.path.join(_code_root, path, file))
        if target != _code_root and not target.startswith(_code_root + os.sep):
            raise _NotRunnable(
                f"file {file!r} in {path!r} resolves outside the code directory {_code_root}"
            )
        if len(_targets) >= 1024:
            _targets.clear()
        folder = os.path.dirname(target)
        _targets[(path, file)] = (target, folder)
    try:
        st = os.stat(target)
    except OSError:
        raise _NotRunnable(f"file {file!r} not found in {path!r}") from None
    if not _stat.S_ISREG(st.st_mode):
        raise _NotRunnable(f"file {file!r} in {path!r} is not a regular file")
    return target, folder, st


def _code_for(path: str) -> CodeType:
    """The module's code: from its hash-based .pyc when that matches the source (what
    `pyrt build` writes), else compiled from the source, never written anywhere."""
    with open(path, "rb") as f:
        source = f.read()
    try:
        with open(_bootstrap_external.cache_from_source(path), "rb") as f:
            data = f.read()
        flags = int.from_bytes(data[4:8], "little")
        if (
            data[:4] == _bootstrap_external.MAGIC_NUMBER
            and flags & 0b1
            and data[8:16] == _imp.source_hash(_bootstrap_external._RAW_MAGIC_NUMBER, source)
        ):
            code: CodeType = marshal.loads(memoryview(data)[16:])
            return code
    except (OSError, ValueError, EOFError, TypeError):
        pass
    compiled: CodeType = compile(source, path, "exec", dont_inherit=True)
    return compiled


def _load(path: str, st: os.stat_result) -> ModuleType:
    """The module at path, imported once and cached until its mtime or size changes."""
    cached = _modules.get(path)
    if cached is not None and cached[1] == st.st_mtime_ns and cached[2] == st.st_size:
        return cached[0]
    folder = os.path.dirname(path)
    _add_function_dir(folder)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = _bootstrap_external.spec_from_file_location(name, path)
    # No spec (a suffix no loader takes, such as .txt) fails inside module_from_spec
    # with an AttributeError, reported like any other import error.
    module = _bootstrap.module_from_spec(spec)  # type: ignore[arg-type]
    # Registered under its own name (dataclasses and pickle look there) unless that
    # name belongs to another module, such as a standard one.
    previous = sys.modules.get(name)
    register = previous is None or previous is (cached[0] if cached else None)
    if register:
        sys.modules[name] = module
    try:
        exec(_code_for(path), module.__dict__)
    except BaseException:
        _modules.pop(path, None)
        if register:
            sys.modules.pop(name, None)
        raise
    _modules[path] = (module, st.st_mtime_ns, st.st_size)
    return module


def _find_main(path: str, file: str) -> Main:
    """The seed's and v2's way to the function: locate, import, `main`, then its folder
    as the working directory. Raises _NotRunnable with the message for a 500 (v5 words
    its own: see _load_v5_main)."""
    target, folder, st = _locate(path, file)
    try:
        module = _load(target, st)
    except BaseException as e:
        raise _NotRunnable(_user_traceback(e)) from None
    main: object = getattr(module, "main", None)
    if not callable(main):
        raise _NotRunnable(_NO_MAIN)
    _enter(folder)
    return main


def _enter(folder: str) -> None:
    """The function's folder is the working directory while it runs."""
    global _cwd
    if _cwd != folder:
        os.chdir(folder)
        _cwd = folder


# ------------------------------------------------------------ the call


def _call(main: Main, *args: object) -> Generator[Awaitable[Any], Any, Any]:
    """What main returned; when that is awaitable (async def main), it is yielded to the
    execution's driver, which sends back its value."""
    value = main(*args)
    if hasattr(value, "__await__"):
        value = yield value
    else:
        _ran_sync.set(True)
    return value


def _event_loop() -> asyncio.AbstractEventLoop:
    """One event loop per worker, alive across executions (a module-level client bound
    to it keeps working); asyncio is imported only when a function needs it."""
    global _loop
    if _loop is None:
        import asyncio

        if type(asyncio.get_event_loop_policy()) is asyncio.DefaultEventLoopPolicy:
            _loop = asyncio.SelectorEventLoop(_precise_selector())
        else:  # the function installed a policy of its own (uvloop, say): its loop
            _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop


def _precise_selector() -> selectors.BaseSelector:
    """asyncio's epoll selector, waiting to the microsecond (_pyrt_worker.epoll_wait):
    Python's own rounds each wait up to a whole millisecond, so timers (asyncio.sleep)
    would fire up to 1 ms late -- more under load, where most waits are that short."""
    import select
    import selectors

    class PreciseEpollSelector(selectors.EpollSelector):
        def select(
            self, timeout: Optional[float] = None
        ) -> List[Tuple[selectors.SelectorKey, int]]:
            keys = self.get_map()
            found = _pyrt_worker.epoll_wait(self.fileno(), timeout, max(len(keys), 1))
            ready = []
            for fd, mask in found:
                key = keys.get(fd)
                if key is None:
                    continue
                events = 0
                if mask & ~select.EPOLLOUT:  # readable, or an error or hang-up
                    events |= selectors.EVENT_READ
                if mask & ~select.EPOLLIN:  # writable, or an error or hang-up
                    events |= selectors.EVENT_WRITE
                ready.append((key, events & key.events))
            return ready

    return PreciseEpollSelector()


def _run_steps(steps: Steps, internal_error: Callable[[str], Answer]) -> Answer:
    """Drives an execution one at a time: what it yields runs to completion on the
    worker's event loop. Flagged ASYNC when it yielded (the master then knows that
    this function's executions may share a worker)."""
    sent: Any = None
    error: Optional[BaseException] = None
    flags = 0
    token = _ran_sync.set(False)
    try:
        while True:
            try:
                awaitable = steps.throw(error) if error is not None else steps.send(sent)
            except StopIteration as done:
                status, headers, out, own = done.value
                if _ran_sync.get():
                    flags |= _SYNC_FLAG
                _ran_sync.reset(token)
                return status, headers, out, own | flags
            flags = _ASYNC_FLAG
            try:
                sent, error = _event_loop().run_until_complete(awaitable), None
            except BaseException as e:
                sent, error = None, e
    except BaseException as e:  # a bug of ours, or an exception raised by __del__ etc.
        return internal_error("pyrt internal error: " + _user_traceback(e))


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the user's code down, without pyrt's own frames."""
    global _hit_memory_limit
    if isinstance(exc, MemoryError):
        _hit_memory_limit = True  # a worker that hit --max-memory is replaced
    tb = exc.__traceback__
    # pyrt's frames, and asyncio's when it ran an async main, come first
    asyncio = sys.modules.get("asyncio")
    asyncio_dir = (
        os.path.dirname(asyncio.__file__) + os.sep if asyncio and asyncio.__file__ else None
    )
    while tb is not None and (
        tb.tb_frame.f_code.co_filename == __file__
        or (asyncio_dir and tb.tb_frame.f_code.co_filename.startswith(asyncio_dir))
    ):
        tb = tb.tb_next
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, tb))


# ------------------------------------------------------------ one execution, any contract


def execute(request_id: str, body: bytes) -> Answer:
    """One execution (seed, v2). Never raises: every failure is an answer."""
    global _wrote, _hit_memory_limit
    _wrote = False
    _hit_memory_limit = False
    return _finish(_run_steps(_steps_for(body, None), _internal_error))


def execute_http(
    request_id: str,
    method: bytes,
    target: bytes,
    headers: Sequence[Tuple[bytes, bytes]],
    body: bytes,
) -> Answer:
    """One v5 execution. Never raises: every failure is an answer."""
    global _wrote, _hit_memory_limit
    _wrote = False
    _hit_memory_limit = False
    return _finish(_run_steps(_steps_for(body, (method, target, headers)), _internal_error))


def _steps_for(
    body: bytes, head: Optional[Tuple[bytes, bytes, Sequence[Tuple[bytes, bytes]]]]
) -> Steps:
    """The execution a CALL asks for, in the server's contract."""
    if head is not None:
        return _execute_v5(head[0], head[1], head[2], body)
    return _execute_v2(body) if _contract == "v2" else _execute(body)


def _internal_error(message: str) -> Answer:
    """A failure of pyrt's own, in the contract's form."""
    if _contract == "v5":
        return _v5_error(500, message)
    return _v2_error(500, message) if _contract == "v2" else _error(500, message)


def _finish(answer: Answer) -> Answer:
    status, headers, out, flags = answer
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if _wrote:
        flags |= _OUTPUT_FLAG
    if _hit_memory_limit:
        flags |= _RECYCLE_FLAG
    return status, headers, out, flags


# What the master accepts in a header name (RFC 9110 token): checked here too, so that
# a bad name is a 500 that names it, not a worker the master must replace.
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _to_json(obj: object) -> bytes:
    try:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:
        raise _BadResponse(f"response is not JSON serializable: {e}") from None


def _field(data: Dict[str, Any], name: str, kind: type, default: Any) -> Any:
    """data[name] when it is a `kind` (dict or str), default when absent or null."""
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise _BadRequest(f"{name} must be {'an object' if kind is dict else 'a string'}")
    return value


# ------------------------------------------------------------ the seed's contract


def _error(code: int, message: str) -> Answer:
    body = json.dumps({"message": message, "code": code}).encode()
    return code, [("Content-Type", _JSON)], body, 0


def _execute(body: bytes) -> Steps:
    """One seed execution: the request, its function, the call, the answer."""
    try:
        path, file, req = _seed_request(body)
    except _BadRequest as e:
        return _error(400, str(e))
    if not path or not file:
        return _error(500, "no path or file specified")
    try:
        main = _find_main(path, file)
    except _NotRunnable as e:
        return _error(500, str(e))
    res = _Response()
    try:
        value = yield from _call(main, req, res)
    except BaseException as e:
        return _error(500, _user_traceback(e))
    try:
        return _render(value, res)
    except _BadResponse as e:
        return _error(500, str(e))


def _seed_request(body: bytes) -> Tuple[Optional[str], Optional[str], function_types.Request]:
    """(path, file, req) from the JSON body; _BadRequest says what is wrong with it."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise _BadRequest("request body is nested too deeply") from None
    except ValueError as e:
        raise _BadRequest(f"request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise _BadRequest("request body must be a JSON object")
    path = _field(data, "path", str, _code_root)
    file = _field(data, "file", str, _default_file)
    env = _field(data, "env", dict, {})
    headers = _field(data, "headers", dict, {})
    payload = data["payload"] if "payload" in data else {}
    return path, file, _Request(payload, env, headers)


def _render(value: object, res: function_types.Response) -> Answer:
    if value is None:
        value = res.last
        if value is None:
            raise _BadResponse(_NO_RESPONSE)
    if isinstance(value, _Result):
        if value.is_json:
            body = _to_json(value.body)
        elif isinstance(value.body, str):
            body = value.body.encode("utf-8")
        else:
            body = bytes(value.body)
        return value.status, _headers_for(value.headers, value.content_type), body, 0
    if isinstance(value, (dict, list)):
        return 200, [("Content-Type", _JSON)], _to_json(value), 0
    if isinstance(value, str):
        return 200, [("Content-Type", _TEXT)], value.encode("utf-8"), 0
    if isinstance(value, (bytes, bytearray)):
        return 200, [("Content-Type", _BYTES)], bytes(value), 0
    raise _BadResponse(
        f"main returned {_article(type(value).__name__)} {type(value).__name__}, "
        "which pyrt cannot send; "
        "return res.send(...), res.json(...), a dict, a list, a str or bytes"
    )


def _headers_for(result_headers: Mapping[Any, Any], content_type: str) -> List[Tuple[str, str]]:
    headers = [("Content-Type", content_type)]
    for name, value in result_headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise _BadResponse(
                f"response header {name!r}: names and values must be strings"
            )
        lower = name.lower()
        if lower in _RESERVED_HEADERS:
            raise _BadResponse(
                f"response header {name!r} is not allowed: pyrt sets it itself"
            )
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise _BadResponse(f"response header {name!r} contains CR or LF")
        if not name or len(name) > 256 or not _TOKEN_CHARS.issuperset(name):
            raise _BadResponse(
                f"response header name {name!r} is not an HTTP token "
                "(letters, digits and !#$%&'*+-.^_`|~, at most 256)"
            )
        if "\0" in value:
            raise _BadResponse(f"response header {name!r} contains a NUL character")
        if lower == "content-type":
            headers[0] = ("Content-Type", value)
        else:
            headers.append((name, value))
    return headers


# ------------------------------------------------------------ open-runtimes v5

_V5_TEXT = "text/plain; charset=utf-8"
_V5_NO_RETURN = (
    "Return statement missing. return context.res.empty() if no response is expected."
)
_V5_NO_MAIN = "Function signature invalid. Did you forget to export a 'main' function?"
# A TypedDict for the type checker, a dict subclass at run time: what tells the
# context.res methods' answer from a dict that a main(req, res) function returns.
_ContextOutput: type = function_types.ContextOutput


def _parse_forced_headers(text: Optional[str]) -> Dict[str, str]:
    """OPEN_RUNTIMES_HEADERS: a JSON object forced over every request's headers (names
    lower-cased, values as str() gives them). Anything else forces nothing."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k).lower(): str(v) for k, v in value.items()}


def _log(stream: int, text: str) -> None:
    """context.log (0) / context.error (1): one line to the execution's log file, sent
    to the master at once; a task's line names its execution."""
    seq = _task_seq.get()
    if seq:
        _pyrt_worker.log(stream, text, seq)
    else:
        _pyrt_worker.log(stream, text)


def _v5_error(status: int, message: str) -> Answer:
    """An answer with an empty body; the reason goes to the execution's errors file."""
    _log(1, message.rstrip("\n"))
    return status, [("content-type", _V5_TEXT)], b"", 0


def _execute_v5(
    method: bytes, target: bytes, raw_headers: Sequence[Tuple[bytes, bytes]], body: bytes
) -> Steps:
    """One v5 execution: the entry point's main (a 503 while it is broken: the server
    keeps answering), the request, the call, the answer."""
    try:
        main = _load_v5_main()
    except _NotRunnable as e:
        return _v5_error(503, str(e))
    req = _v5_request(method, target, raw_headers, body)
    res = function_types.ContextResponse()
    legacy = _arity_of(main) == 2
    try:
        if legacy:  # a seed-style function: req has payload and env too
            value = yield from _call(main, req, res)
        else:
            value = yield from _call(main, function_types.Context(req, res, _log))
    except BaseException as e:
        return _v5_error(500, _user_traceback(e))
    if value is None and legacy:
        value = res.last
    if value is None:
        return _v5_error(500, _V5_NO_RETURN)
    try:
        return _render_v5(value, legacy)
    except _BadResponse as e:
        return _v5_error(500, str(e))


def _load_v5_main() -> Main:
    """The entry point's main; _NotRunnable gives the reason for the errors file."""
    file = _default_file
    if file is None:
        raise _NotRunnable("Failed to load entrypoint: none given (set OPEN_RUNTIMES_ENTRYPOINT).")
    try:
        target, folder, st = _locate(_code_root, file)
    except _NotRunnable:
        raise _NotRunnable(f"Failed to load entrypoint, file {file} does not exist.") from None
    try:
        module = _load(target, st)
    except ModuleNotFoundError as e:
        raise _NotRunnable(f"Module not found: {e.name}\n{_user_traceback(e)}") from None
    except SyntaxError as e:
        raise _NotRunnable(f"Syntax error in {e.filename}:{e.lineno}: {e.msg}") from None
    except BaseException as e:
        raise _NotRunnable("Failed to load module: " + _user_traceback(e)) from None
    main: object = getattr(module, "main", None)
    if not callable(main):
        raise _NotRunnable(f"{file}: {_V5_NO_MAIN}")
    _enter(folder)
    return main


def _v5_request(
    method: bytes, target: bytes, raw_headers: Sequence[Tuple[bytes, bytes]], body: bytes
) -> function_types.ContextRequest:
    """context.req from what the master forwarded (names already lower-case)."""
    headers: Dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("utf-8", "surrogateescape")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    scheme = headers.get("x-forwarded-proto", "http")
    host, port = function_types.split_host(headers.get("host", ""), scheme)
    headers.update(_forced_headers)
    req = function_types.ContextRequest.__new__(function_types.ContextRequest)
    req.method = method.decode("latin-1")
    req.headers = headers
    req.body_binary = body
    req._set_target(scheme, host, port, target.decode("utf-8", "surrogateescape"))
    return req


def _arity_of(main: Main) -> int:
    """2 for a main(req, res) function, else 1 (main(context))."""
    known = _arity.get(main)
    if known is not None:
        return known
    code = getattr(main, "__code__", None)
    if code is not None and not hasattr(main, "__self__"):
        positional: int = code.co_argcount
        required = positional - len(getattr(main, "__defaults__", None) or ())
    else:
        import inspect

        try:
            params = [
                p
                for p in inspect.signature(main).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        except (TypeError, ValueError):
            params = []
        positional = len(params)
        required = sum(1 for p in params if p.default is p.empty)
    arity = 2 if required >= 2 or (required < 1 and positional >= 2) else 1
    if len(_arity) >= 1024:
        _arity.clear()
    _arity[main] = arity
    return arity


def _render_v5(value: object, legacy: bool) -> Answer:
    body, status, headers = _v5_output(value, legacy)
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif isinstance(body, (bytes, bytearray)):
        body = bytes(body)
    else:
        raise _BadResponse(f"response body must be str or bytes, not {type(body).__name__}")
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
        raise _BadResponse(f"response status must be an int from 200 to 599, got {status!r}")
    return status, _v5_headers(headers), body, 0


def _v5_output(value: object, legacy: bool) -> Tuple[Any, Any, Any]:
    """(body, status, headers) of what main returned, none of them checked yet."""
    if isinstance(value, dict) and (not legacy or isinstance(value, _ContextOutput)):
        # open-runtimes reads these keys with defaults; so do we
        return value.get("body", ""), value.get("statusCode", 200), value.get("headers")
    if legacy:  # the seed's return rules
        if isinstance(value, _Result):
            body = _to_json(value.body) if value.is_json else value.body
            headers = {"content-type": value.content_type}
            headers.update(value.headers)
            return body, value.status, headers
        if isinstance(value, (dict, list)):
            return _to_json(value), 200, {"content-type": "application/json"}
        if isinstance(value, (str, bytes, bytearray)):
            return value, 200, None
    raise _BadResponse(
        f"main returned {_article(type(value).__name__)} {type(value).__name__}; return "
        "context.res.text(...), .json(...), .binary(...), .empty() or .redirect(...)"
    )


def _v5_headers(headers: Any) -> List[Tuple[str, str]]:
    """The answer's header lines: content-type first (with a charset unless multipart),
    lower-case names, a list value sent as several lines; the executor's own
    x-open-runtimes-* headers and those that frame the answer (pyrt's job) dropped."""
    if headers is None:
        headers = {}
    if not hasattr(headers, "items"):
        raise _BadResponse(f"response headers must be a dict, not {type(headers).__name__}")
    content_type = "text/plain"
    lines = []
    for name, value in headers.items():
        if not isinstance(name, str):
            raise _BadResponse(f"response header name {name!r} is not a string")
        lower = name.lower()
        if lower.startswith("x-open-runtimes-") or lower in _RESERVED_HEADERS:
            continue
        if not lower or len(lower) > 256 or not _TOKEN_CHARS.issuperset(lower):
            raise _BadResponse(f"response header name {name!r} is not an HTTP token")
        for item in value if isinstance(value, (list, tuple)) else (value,):
            text = item if isinstance(item, str) else str(item)
            if "\r" in text or "\n" in text or "\0" in text:
                raise _BadResponse(f"response header {name!r} contains CR, LF or NUL")
            if lower == "content-type":
                content_type = text
            else:
                lines.append((lower, text))
    content_type = content_type.lower()
    if not content_type.startswith("multipart/") and "charset=" not in content_type:
        content_type += "; charset=utf-8"
    lines.insert(0, ("content-type", content_type))
    return lines


# ------------------------------------------------------------ the executor's v2


def _v2_answer(status: int, envelope: Dict[str, Any]) -> Answer:
    return status, [("Content-Type", _JSON)], json.dumps(envelope).encode("utf-8"), 0


def _v2_error(status: int, message: str, stdout: str = "") -> Answer:
    return _v2_answer(status, {"stdout": stdout, "stderr": message})


def _execute_v2(body: bytes) -> Steps:
    """One v2 execution: the request, the entry point's main, the call with its output
    captured, the answer (an envelope with the response and that output)."""
    try:
        req = _v2_request(body)
    except _BadRequest as e:
        return _v2_error(400, str(e))
    if _default_file is None:
        return _v2_error(500, "no entry point: set INTERNAL_RUNTIME_ENTRYPOINT")
    try:
        main = _find_main(_code_root, _default_file)
    except _NotRunnable as e:
        return _v2_error(500, str(e))
    res = function_types.LegacyResponse()
    failed, stdout, stderr = yield from _v2_call(main, req, res)
    if failed:
        return _v2_error(500, stderr, stdout)
    status = res.status
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
        return _v2_error(500, f"status must be an int from 200 to 599, got {status!r}", stdout)
    envelope = {"response": res.response, "stdout": stdout}
    if stderr:
        envelope["stderr"] = stderr
    try:
        return _v2_answer(status, envelope)
    except (TypeError, ValueError, RecursionError) as e:
        return _v2_error(500, f"response is not JSON serializable: {e}", stdout)


def _v2_request(body: bytes) -> function_types.LegacyRequest:
    """req from the JSON body; _BadRequest says what is wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise _BadRequest(f"request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise _BadRequest("request body must be a JSON object")
    variables = _field(data, "variables", dict, {})
    headers = _field(data, "headers", dict, {})
    payload = data.get("payload", "")
    return function_types.LegacyRequest(variables, payload, headers)


def _v2_call(
    main: Main, req: function_types.LegacyRequest, res: function_types.LegacyResponse
) -> Generator[Awaitable[Any], Any, Tuple[bool, str, str]]:
    """Runs main with what it prints captured: (whether it raised, stdout, stderr), the
    traceback after stderr when it raised. main's value is not used: res holds the
    answer."""
    captured: List[List[str]] = [[], []]
    token = _capture.set(captured)
    try:
        yield from _call(main, req, res)
    except BaseException as e:
        trace = _user_traceback(e)
        err = "".join(captured[1])
        stderr = err + ("" if not err or err.endswith("\n") else "\n") + trace
        return True, "".join(captured[0]), stderr
    finally:
        _capture.reset(token)
    return False, "".join(captured[0]), "".join(captured[1])


# ------------------------------------------------------------ tasks (--async-slots)
#
# After the first CALL flagged TASK the worker lives in serve_tasks: its event loop
# reads the channel (the C side parses the frames and claims each CALL at the gate),
# runs each execution as a task and sends each answer as its task ends. Sync code
# blocks the loop: the master sends a task beside others only for a function whose
# main it saw to be a coroutine function (the ASYNC flag). At a task's deadline the
# master answers the client itself and sends CANCEL: the task is cancelled (main sees
# CancelledError) and its RESULT, whatever it says, tells the master it ended.

_tasks: Dict[int, asyncio.Task[None]] = {}
# (seq, stream) -> the unfinished line a task printed: whole lines go out as OUTPUT
_partial_lines: Dict[Tuple[int, int], str] = {}


class _Stepped:
    """A task's awaitable, each step announced to the master through the gate page: if
    the loop stops turning, the master names the execution that blocked it."""

    __slots__ = ("_awaitable", "_seq")

    def __init__(self, awaitable: Awaitable[Any], seq: int) -> None:
        self._awaitable = awaitable
        self._seq = seq

    def __await__(self) -> Generator[Any, Any, Any]:
        inner: Any = self._awaitable.__await__()
        sent: Any = None
        error: Optional[BaseException] = None
        while True:
            _pyrt_worker.running(self._seq)
            try:
                step = inner.throw(error) if error is not None else inner.send(sent)
            except StopIteration as done:
                return done.value
            finally:
                _pyrt_worker.running(0)
            try:
                sent, error = (yield step), None
            except BaseException as e:  # cancellation and GeneratorExit go in too
                sent, error = None, e


def _task_write(seq: int, stream: int, text: str) -> int:
    """What task `seq` printed: whole lines go to the master now, the rest waits."""
    key = (seq, stream)
    pending = _partial_lines.pop(key, "") + text
    cut = pending.rfind("\n") + 1
    if cut:
        _send_output(seq, stream, pending[:cut])
    if cut < len(pending):
        _partial_lines[key] = pending[cut:]
    return len(text)


def _send_output(seq: int, stream: int, text: str) -> None:
    _pyrt_worker.output(seq, stream, text.encode("utf-8", "backslashreplace"))


def _flush_task_output(seq: int) -> None:
    """A task's unfinished lines go out as they are when it ends."""
    for stream in (0, 1):
        rest = _partial_lines.pop((seq, stream), None)
        if rest:
            _send_output(seq, stream, rest)


def serve_tasks(first: TaskCall, channel_fd: int) -> None:
    """The worker's life from its first task on; never returns (the C side exits when
    the master closes the channel). A CALL to run alone (a function not known to be
    async, sent only while no task runs) stops the loop and runs as it would without
    tasks, so that a sync main may start an event loop of its own."""
    loop = _event_loop()
    _take_frames([first])
    _take_frames(_pyrt_worker.read_frames(False))
    loop.add_reader(channel_fd, _on_channel)
    while True:
        loop.run_forever()
        while _alone:
            _run_alone(_alone.pop(0))


def _on_channel() -> None:
    _take_frames(_pyrt_worker.read_frames(True))


_alone: List[TaskCall] = []  # CALLs to run alone, once the loop has stopped


def _take_frames(frames: Sequence[Union[int, TaskCall]]) -> None:
    """CALLs become tasks (or wait for the loop to stop, to run alone); a CANCEL (a seq)
    is acknowledged at once -- reading it shows the loop turns -- and cancels its task."""
    for frame in frames:
        if isinstance(frame, int):
            _pyrt_worker.cancelled(frame)
            task = _tasks.get(frame)
            if task is not None:
                task.cancel()
            continue
        seq, request_id, body, head, is_task = frame
        if not is_task:
            _alone.append(frame)
            _event_loop().stop()
            continue
        try:
            task = _event_loop().create_task(_run_task(seq, body, head))
        except BaseException as e:  # the execution is answered whatever happens
            _pyrt_worker.send_result(seq, _internal_error("pyrt internal error: " + repr(e)))
            continue
        _tasks[seq] = task
        task.add_done_callback(functools.partial(_task_done, seq))


def _run_alone(frame: TaskCall) -> None:
    """One execution with the loop stopped, in a context of its own that names it (its
    output goes as a task's)."""
    seq, request_id, body, head, _ = frame

    def run() -> Answer:
        _task_seq.set(seq)
        if head is None:
            answer = execute(request_id, body)
        else:
            answer = execute_http(request_id, head[0], head[1], head[2], body)
        _flush_task_output(seq)
        return answer

    answer = contextvars.Context().run(run)
    _pyrt_worker.end_execution()  # what it left ends before its answer leaves
    _pyrt_worker.send_result(seq, answer)


async def _run_task(
    seq: int, body: bytes, head: Optional[Tuple[bytes, bytes, List[Tuple[bytes, bytes]]]]
) -> None:
    """One execution as a task: its steps driven on the loop, its answer sent."""
    _task_seq.set(seq)
    answer = await _drive_task(_steps_for(body, head), seq)
    _flush_task_output(seq)
    if _tasks.pop(seq, None) is not None:
        if not _tasks:  # nothing else runs: what the executions left is ended now
            _pyrt_worker.end_execution()
        _pyrt_worker.send_result(seq, _with_recycle(answer))


def _with_recycle(answer: Answer) -> Answer:
    status, headers, out, flags = answer
    return status, headers, out, flags | (_RECYCLE_FLAG if _hit_memory_limit else 0)


async def _drive_task(steps: Steps, seq: int) -> Answer:
    """_run_steps for a task: what the execution yields is awaited on the shared loop."""
    sent: Any = None
    error: Optional[BaseException] = None
    flags = 0
    try:
        while True:
            _pyrt_worker.running(seq)
            try:
                awaitable = steps.throw(error) if error is not None else steps.send(sent)
            except StopIteration as done:
                status, headers, out, own = done.value
                if _ran_sync.get():  # in the task's own context
                    flags |= _SYNC_FLAG
                return status, headers, out, own | flags
            finally:
                _pyrt_worker.running(0)
            flags = _ASYNC_FLAG
            try:
                sent, error = await _Stepped(awaitable, seq), None
            except BaseException as e:  # CancelledError at the deadline among them
                sent, error = None, e
    except BaseException as e:  # a bug of ours, or an exception raised by __del__ etc.
        return _internal_error("pyrt internal error: " + _user_traceback(e))


def _task_done(seq: int, task: asyncio.Task[None]) -> None:
    """A task that ended without sending its answer (cancelled before it started, or a
    bug of ours): the master still hears that it ended."""
    if _tasks.pop(seq, None) is None:
        return
    reason = "cancelled" if task.cancelled() else repr(task.exception())
    contextvars.Context().run(_answer_lost, seq, f"pyrt internal error: task {reason}")


def _answer_lost(seq: int, message: str) -> None:
    _task_seq.set(seq)  # in a context of its own: the errors file is this execution's
    _flush_task_output(seq)
    _pyrt_worker.send_result(seq, _internal_error(message))
