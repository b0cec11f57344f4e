"""A restart storm is one function's: requests for other functions are not answered
with its error."""

from __future__ import annotations

from conftest import ServerFactory, make_code_dir

DIES = "import os\nos._exit(1)\n\ndef main(req, res):\n    return 'never'\n"
HELLO = "def main(req, res):\n    return res.send('hello')\n"


def test_storm_in_one_function_spares_the_others(server_factory: ServerFactory) -> None:
    code = make_code_dir({"dies/index.py": DIES, "ok/index.py": HELLO}, with_functions=False)
    server_factory.bases.append(code.parent)
    srv = server_factory(["--workers", "2"], code_dir=code)
    dies = {"path": str(code / "dies"), "file": "index.py"}
    ok = {"path": str(code / "ok"), "file": "index.py"}
    for _ in range(10):
        status, _, body = srv.post_json(dies)
        assert status == 500 and "exited with status 1" in body["message"], body
        status, _, raw = srv.post(ok)
        assert (status, raw) == (200, b"hello"), (status, raw)
    # A real storm: only the dying function, many times in a row. It backs off and
    # answers at once; the healthy function is still served, never with its error.
    for _ in range(8):
        status, _, body = srv.post_json(dies)
        assert status == 500 and "exited with status 1" in body["message"], body
    assert "workers keep failing" in srv.log_text()
    for _ in range(5):
        status, _, raw = srv.post(ok)
        assert (status, raw) == (200, b"hello"), (status, raw)
