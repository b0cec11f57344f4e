"""`pyrt build`'s check of the entry point, run by the function's own runtime-env.

    python -I -B -c <this> CODE_DIR ENTRY TYPES_DIR

Exit 0 when ENTRY (relative to CODE_DIR) exists inside it, compiles, and importing it
defines a callable ``main`` that takes one positional argument (``context``, the v5
contract) or two (``req, res``); otherwise one message
on stderr naming the file (and the line, for a syntax error) and exit 1.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import traceback

TYPE_CHECKING = False  # typing is for the type checker only (see pyrt_runtime)
if TYPE_CHECKING:
    from typing import NoReturn

OK_MARKER = "pyrt-validate: ok"


def fail(message: str) -> NoReturn:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.exit(1)


def check(code_dir: str, entry: str) -> None:
    root = os.path.realpath(code_dir)
    path = os.path.realpath(os.path.join(root, entry))
    if not path.startswith(root + os.sep):
        fail(f"entry point {entry}: resolves outside {root}")
    if not os.path.isfile(path):
        fail(f"entry point {entry}: no such file in {root}")
    with open(path, "rb") as f:
        source = f.read()
    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        fail(f"{path}:{e.lineno}: syntax error: {e.msg}")
    sys.path.insert(0, os.path.dirname(path))
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    # No spec (a suffix no loader takes) fails inside module_from_spec, with a traceback.
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        fail(f"{path}: importing it failed:\n{traceback.format_exc()}")
    main = getattr(module, "main", None)
    if main is None:
        fail(f"{path}: defines no `main`; pyrt calls main(context) or main(req, res)")
    if not callable(main):
        fail(f"{path}: `main` is a {type(main).__name__}, not a function")
    try:
        signature = inspect.signature(main)
    except ValueError:
        return  # no signature to read (a builtin): let it be
    for args in ((None,), (None, None)):
        try:
            signature.bind(*args)
            return
        except TypeError:
            pass
    fail(
        f"{path}: main{signature} cannot be called as main(context) "
        "or main(req, res)"
    )


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[3])  # pyrt's function_types, as the server has them
    check(sys.argv[1], sys.argv[2])
    # The last word: code that ends the process at import (os._exit(0)) must not pass.
    sys.stdout.write(OK_MARKER + "\n")
    sys.stdout.flush()
