"""pyrt's Python side: runs one execution inside a worker.

Embedded in the pyrt binary and imported once in the zygote, before any worker is
forked. The C worker loop reads a CALL frame and calls ``execute(request_id, body)``;
what it returns becomes the RESULT frame: ``(status, headers, body, flags)``.

The master has already checked that the body is a JSON object with a valid
``timeout``; everything about the function itself is decided here.
"""

# importlib.util and traceback are not imported: start-up counts (cold start to the
# first answer), and importlib.util pulls in contextlib and more. What it would give is
# in the import system's own modules, loaded before any code runs; traceback is
# imported when an error needs it.
import _frozen_importlib as _bootstrap
import _frozen_importlib_external as _bootstrap_external
import _imp
import io
import json
import marshal
import os
import stat as _stat
import sys

import function_types

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
_default_file = None
_modules = {}  # resolved path -> (module, mtime_ns, size)
_site_dirs = set()
_targets = {}  # (path, file) -> (resolved path inside the code dir, its folder)
_loop = None
_cwd = None
_wrote = False  # did this execution write to sys.stdout / sys.stderr?
_OUTPUT_FLAG = 0x2  # PROTO_RESULT_OUTPUT: the master reads the pipes before answering
_RECYCLE_FLAG = 0x1  # PROTO_RESULT_RECYCLE: replace this worker after the answer
_hit_memory_limit = False


class _TrackedStream(io.TextIOWrapper):
    """sys.stdout / sys.stderr: written straight through to fds 1 and 2 (pipes to the
    master), noting that something was written, so the master knows to read them
    before the answer leaves (their lines then carry this execution's id)."""

    def write(self, s):
        global _wrote
        _wrote = True
        return super().write(s)


def _install_streams():
    for name, fd in (("stdout", 1), ("stderr", 2)):
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


def configure(code_root, default_file):
    """Called once in the zygote: the served folder and its default entry file."""
    global _code_root, _default_file, _cwd
    _code_root = os.path.realpath(code_root)
    _default_file = default_file or None
    _add_function_dir(_code_root)
    os.chdir(_code_root)
    _cwd = _code_root
    _install_streams()


def preload():
    """--preload: import the default entry point now, in the zygote."""
    if _default_file is None:
        return
    path = os.path.realpath(os.path.join(_code_root, _default_file))
    _load(path, os.stat(path))


def after_fork():
    """In each new worker: a writable HOME and TMPDIR for this user."""
    home = os.environ.get("HOME")
    if not home or not _writable_dir(home):
        os.environ["HOME"] = _private_dir("home")
    tmp = os.environ.get("TMPDIR")
    if not tmp or not _writable_dir(tmp):
        os.environ["TMPDIR"] = "/tmp" if _writable_dir("/tmp") else _private_dir("tmp")


def _writable_dir(path):
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _private_dir(name):
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


def _add_function_dir(folder):
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


def _error(code, message):
    body = json.dumps({"message": message, "code": code}).encode()
    return code, [("Content-Type", _JSON)], body, 0


def _user_traceback(exc):
    """The traceback from the user's code down, without pyrt's own frames."""
    global _hit_memory_limit
    if isinstance(exc, MemoryError):
        _hit_memory_limit = True  # a worker that hit --max-memory is replaced
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, tb))


def _code_for(path):
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
            return marshal.loads(memoryview(data)[16:])
    except (OSError, ValueError, EOFError, TypeError):
        pass
    return compile(source, path, "exec", dont_inherit=True)


def _load(path, st):
    """The module at path, imported once and cached until its mtime or size changes."""
    cached = _modules.get(path)
    if cached is not None and cached[1] == st.st_mtime_ns and cached[2] == st.st_size:
        return cached[0]
    folder = os.path.dirname(path)
    _add_function_dir(folder)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = _bootstrap_external.spec_from_file_location(name, path)
    module = _bootstrap.module_from_spec(spec)
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


def _run_awaitable(awaitable):
    """One event loop per worker, alive across executions; asyncio is imported only
    when a function needs it."""
    global _loop
    if _loop is None:
        import asyncio

        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop.run_until_complete(awaitable)


# What the master accepts in a header name (RFC 9110 token): checked here too, so that
# a bad name is a 500 that names it, not a worker the master must replace.
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
)


def _headers_for(result_headers, content_type):
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


def _article(word):
    return "an" if word[:1].lower() in "aeiou" else "a"


class _BadResponse(Exception):
    pass


def _to_json(obj):
    try:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:
        raise _BadResponse(f"response is not JSON serializable: {e}") from None


def _render(value, res):
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


def _field(data, name, kind, default):
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise _BadRequest(f"{name} must be {'an object' if kind is dict else 'a string'}")
    return value


class _BadRequest(Exception):
    pass


def _execute(body):
    global _cwd
    try:
        data = json.loads(body)
    except RecursionError:
        return _error(400, "request body is nested too deeply")
    except ValueError as e:
        return _error(400, f"request body is not valid JSON: {e}")
    if not isinstance(data, dict):
        return _error(400, "request body must be a JSON object")
    try:
        path = _field(data, "path", str, _code_root)
        file = _field(data, "file", str, _default_file)
        env = _field(data, "env", dict, {})
        headers = _field(data, "headers", dict, {})
    except _BadRequest as e:
        return _error(400, str(e))
    payload = data["payload"] if "payload" in data else {}
    if not path or not file:
        return _error(500, "no path or file specified")

    # Resolving costs a stat per path component: a pair once found inside the code
    # directory is remembered (a symlink changed later is not seen until a restart).
    known = _targets.get((path, file))
    if known is not None:
        target, folder = known
    else:
        target = os.path.realpath(os.path.join(_code_root, path, file))
        if target != _code_root and not target.startswith(_code_root + os.sep):
            return _error(
                500,
                f"file {file!r} in {path!r} resolves outside the code directory {_code_root}",
            )
        if len(_targets) >= 1024:
            _targets.clear()
        folder = os.path.dirname(target)
        _targets[(path, file)] = (target, folder)
    try:
        st = os.stat(target)
    except OSError:
        return _error(500, f"file {file!r} not found in {path!r}")
    if not _stat.S_ISREG(st.st_mode):  # from the same stat: one per execution
        return _error(500, f"file {file!r} in {path!r} is not a regular file")

    try:
        module = _load(target, st)
    except BaseException as e:
        return _error(500, _user_traceback(e))
    main = getattr(module, "main", None)
    if not callable(main):
        return _error(500, _NO_MAIN)

    if _cwd != folder:
        os.chdir(folder)
        _cwd = folder
    req = _Request(payload, env, headers)
    res = _Response()
    try:
        value = main(req, res)
        if hasattr(value, "__await__"):
            value = _run_awaitable(value)
    except BaseException as e:
        return _error(500, _user_traceback(e))
    try:
        return _render(value, res)
    except _BadResponse as e:
        return _error(500, str(e))


def execute(request_id, body):
    """One execution. Never raises: every failure is an answer."""
    global _wrote, _hit_memory_limit
    _wrote = False
    _hit_memory_limit = False
    try:
        status, headers, out, flags = _execute(body)
    except BaseException as e:  # a bug of ours, or an exception raised by __del__ etc.
        status, headers, out, flags = _error(500, "pyrt internal error: " + _user_traceback(e))
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
