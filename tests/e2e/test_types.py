"""function_types as users get it: installed with pip (offline, from its folder), the
very classes pyrt passes to main, and clean under `mypy --strict` with the examples; pyrt's
own Python (the runtime, the benchmark, the soak) clean under it too."""

from __future__ import annotations

import json
import shutil
import subprocess
import venv
from pathlib import Path
from typing import Iterator

import pytest

from conftest import REPO, ServerFactory
from toolchain import BASE_PIP_ENV, expect_ok, run_tool, tool_env

PACKAGE = REPO / "python" / "function_types"
EXAMPLES = sorted(p for p in (REPO / "examples").iterdir() if (p / "index.py").exists())

IDENTITY_FN = """\
import function_types
from function_types import Request, Response, Result


def main(req: Request, res: Response) -> Result:
    return res.json({
        "req": type(req) is function_types.Request,
        "res": type(res) is function_types.Response,
        "result": type(res.send("x")) is Result,
        "module": function_types.__name__,
    })
"""


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("mypy") is None:
        pytest.fail("mypy is not installed (make test installs Debian's mypy)")
    return subprocess.run(["mypy", "--config-file", str(REPO / "mypy.ini"), *args],
                          cwd=str(REPO), capture_output=True, text=True, timeout=120)


def test_package_is_clean_under_mypy_strict() -> None:
    result = mypy("python/function_types")
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_is_clean_under_mypy_strict() -> None:
    """pyrt's own Python half (the worker's runtime and the build's entry-point check),
    with stubs for the modules that only exist inside pyrt or CPython."""
    result = mypy("python/runtime")
    assert result.returncode == 0, result.stdout + result.stderr


def test_bench_and_soak_are_clean_under_mypy_strict() -> None:
    """The benchmark (bench/bench.py and its package, bench/pyrtbench) and the soak, which
    shares the package's process and HTTP helpers."""
    result = mypy("bench/bench.py", "tests/soak/soak.py")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_is_clean_under_mypy_strict(example: Path) -> None:
    result = mypy(str(example.relative_to(REPO) / "index.py"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_catches_a_wrong_hint(tmp_path: Path) -> None:
    """The check above could fail: a function that misuses the types does not pass."""
    bad = tmp_path / "index.py"
    bad.write_text("from function_types import Request, Response, Result\n\n\n"
                   "def main(req: Request, res: Response) -> Result:\n"
                   "    return res.send(req.env)\n")
    result = mypy(str(bad))
    assert result.returncode != 0
    assert 'incompatible type "Dict[str, Any]"' in result.stdout


@pytest.fixture(scope="module")
def types_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv (Debian's python, with pip) with `pip install ./python/function_types`,
    offline: no index at all."""
    root = tmp_path_factory.mktemp("types-venv") / "venv"
    venv.EnvBuilder(with_pip=True).create(root)
    env = tool_env({"PIP_NO_INDEX": "1", **BASE_PIP_ENV})
    result = subprocess.run([str(root / "bin" / "pip"), "install", str(PACKAGE)],
                            capture_output=True, text=True, timeout=180, env=env, cwd="/")
    assert result.returncode == 0, result.stdout + result.stderr
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_pip_installs_the_package_offline(types_venv: Path) -> None:
    code = ("import function_types, os, json; "
            "d = os.path.dirname(function_types.__file__); "
            "print(json.dumps([d, os.path.exists(os.path.join(d, 'py.typed'))]))")
    out = subprocess.run([str(types_venv / "bin" / "python"), "-c", code], capture_output=True,
                         text=True, timeout=30, cwd="/")
    assert out.returncode == 0, out.stderr
    where, typed = json.loads(out.stdout)
    assert where.startswith(str(types_venv)) and "site-packages" in where
    assert typed, "py.typed is installed"
    # The installed copy is the source pyrt embeds, byte for byte.
    installed = Path(where) / "__init__.py"
    assert installed.read_bytes() == (PACKAGE / "function_types" / "__init__.py").read_bytes()


def test_unit_testing_main_in_the_venv(types_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "index.py").write_text(IDENTITY_FN)
    (tmp_path / "test_index.py").write_text(
        "import unittest\n"
        "from function_types import Request, Response\n"
        "from index import main\n\n\n"
        "class T(unittest.TestCase):\n"
        "    def test_main(self) -> None:\n"
        "        result = main(Request(payload=1), Response())\n"
        "        self.assertEqual(result.status, 200)\n"
        "        self.assertTrue(result.body['req'])\n")
    out = subprocess.run([str(types_venv / "bin" / "python"), "-m", "unittest", "-q"],
                         capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_main_gets_the_package_classes(server_factory: ServerFactory) -> None:
    server = server_factory(files={"ident/index.py": IDENTITY_FN})
    status, _, body = server.post_json({"file": "ident/index.py"})
    assert status == 200, body
    assert body == {"req": True, "res": True, "result": True, "module": "function_types"}


def test_an_installed_copy_does_not_replace_pyrts(server_factory: ServerFactory,
                                                   tmp_path: Path) -> None:
    """With function-types in requirements.txt (as a user may list it for their IDE),
    `import function_types` in main still gives the classes pyrt passes."""
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "index.py").write_text(IDENTITY_FN)
    (fn / "requirements.txt").write_text(f"function-types @ file://{PACKAGE}\n")
    expect_ok(run_tool(["build", str(fn)], env={"PIP_NO_INDEX": "1"}, timeout=180))
    site = list((fn / "runtime-env" / "lib").glob("python3*/site-packages/function_types"))
    assert site, "the build installed function-types into runtime-env"
    server = server_factory(code_dir=fn)
    status, _, body = server.post_json({})
    assert status == 200, body
    assert body["req"] and body["res"] and body["result"]

