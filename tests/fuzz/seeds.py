#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus, tests/fuzz/corpus/NAME/, a few good and bad
inputs each (the committed files are its output: run it again after changing it).

Files named regress-* are reproducers of bugs the fuzzers found; this script does not
write or remove them.
"""

import io
import struct
import tarfile
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def pstr(b: bytes) -> bytes:
    return u32(len(b)) + b


def frame(msg_type: int, payload: bytes) -> bytes:
    return u32(len(payload)) + u32(msg_type) + payload


def result_payload(seq=1, status=200, flags=0, headers=(), body=b"{}") -> bytes:
    out = u32(seq) + u32(status) + u32(flags) + u32(len(headers))
    for name, value in headers:
        out += pstr(name) + pstr(value)
    return out + pstr(body)


def tar_bytes(members, gz=False) -> bytes:
    """members: (name, type, data_or_linkname, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = data
                t.addfile(info)
            elif kind == tarfile.REGTYPE:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)
    data = buf.getvalue()
    if gz:
        return data
    # Without the record's padding: the members, then the two zero blocks that end it.
    end = (len(data.rstrip(b"\0")) + 511) // 512 * 512
    return data[:end] + b"\0" * 1024


REG, DIR, SYM, LNK, FIFO = (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                            tarfile.FIFOTYPE)

SEEDS = {
    "reqline": {
        "get": b"GET / HTTP/1.1\r\n",
        "post-lf": b"POST /x?y=1 HTTP/1.0\n",
        "two-spaces": b"GET  / HTTP/1.1\r\n",
        "httx": b"GET / HTTX/1.1\r\n",
        "no-version": b"GET /\r\n",
        "ctl-in-method": b"G\x01T / HTTP/1.1\r\n",
        "high-byte-target": b"GET /\xff HTTP/1.1\r\n",
        "two-cr": b"GET / HTTP/1.1\r\r\n",
    },
    # Byte 0: chunk seed; bit 7 the v5 contract.
    "http": {
        "post": b"\x03POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n{\"timeout\": 1.5}",
        "chunked": b"\x05POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"2\r\n{}\r\n0\r\n\r\n",
        "pipelined": b"\x07GET /__health HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 2\r\n"
                     b"\r\n{}GET / HTTP/1.1\r\n\r\n",
        "bad-chunk-crlf": b"\x01POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"2\r\n{}XX0\r\n\r\n",
        "expect": b"\x02POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
        "v5-put": b"\x83PUT /a/b?c=d HTTP/1.1\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: 5\r\n\r\nhello",
        "http10-close": b"\x04POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}POST / HTTP/1.0\r\n\r\n",
        "too-large": b"\x06POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n{}",
        "leading-crlf": b"\x08\r\n\r\nGET /__health HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
        "bad-line": b"\x09GET / HTTX/1.1\r\n\r\n",
        "long-url": b"\x0aGET /" + b"a" * 8200 + b" HTTP/1.1\r\n\r\n",
        "many-headers": b"\x0bGET / HTTP/1.1\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(101))
                        + b"\r\n",
    },
    # Byte 0: chunk seed.
    "body": {
        "object": b"\x01{\"timeout\": 1.5, \"path\": \"/a\", \"file\": \"b.py\", \"x\": [1, null]}",
        "timeout-zero": b"\x02{\"timeout\": 0}",
        "timeout-string": b"\x03{\"timeout\": \"5\"}",
        "array": b"\x04[]",
        "long-string": b"\x05{\"a\": \"" + b"x" * 300 + b"\", \"timeout\": 2}",
        "escapes": b"\x06{\"k\\u0065y\": \"\\u00e9\\\"\\n\", \"timeout\": 1e400}",
        "truncated": b"\x07{\"a\": ",
        "nested": b"\x08{\"a\": {\"timeout\": -1, \"b\": [[{}]]}, \"timeout\": 3}",
        "bad-utf8": b"\x09{\"a\": \"\xc3\"}",
    },
    # Bytes 0-1: size limit, chunk seed; 2-13: gate slot and seq; then the stream.
    "proto": {
        "ready-result": b"\x04\x01" + struct.pack("<QI", 5 << 2, 5)
                        + frame(4, u32(1234)) + frame(6, result_payload(
                            headers=((b"content-type", b"application/json"),))),
        "log-spawned": b"\x03\x02" + struct.pack("<QI", (7 << 2) | 1, 7)
                       + frame(8, u32(1) + u32(0) + pstr(b"a line"))
                       + frame(3, u32(2) + u32(99) + pstr(b"")),
        "over-limit": b"\x01\x03" + struct.pack("<QI", 0, 9) + u32(100) + u32(6) + b"\x00" * 16,
        "truncated": b"\x05\x04" + struct.pack("<QI", 2, 0) + frame(6, b"\x01\x00")[:7],
        "unknown-type": b"\x04\x05" + struct.pack("<QI", 1 << 40, 3) + frame(99, pstr(b"x") * 3),
    },
    "result": {
        "ok": result_payload(headers=((b"content-type", b"application/json"),
                                      (b"x-a", b"b: c"))),
        "recycle-output": result_payload(seq=7, status=503, flags=3, body=b""),
        "status-100": result_payload(status=100),
        "reserved": result_payload(headers=((b"Content-Length", b"5"),)),
        "crlf-value": result_payload(headers=((b"x", b"a\r\nb"),)),
        "trailing": result_payload() + b"\x00",
        "short": result_payload()[:10],
    },
    # Byte 0: max - 1; byte 1: chunk seed.
    "lines": {
        "short": b"\x0f\x01hello\nworld\n\nno newline",
        "exact-max": b"\x03\x02abcd\nabc\n",
        "long": b"\xff\x03" + b"x" * 600 + b"\n" + b"y" * 10,
    },
    # The member path, NUL, the symlink's text.
    "tar_link": {
        "inside": b"a/b\x00../c",
        "climbs": b"a\x00..",
        "absolute": b"x\x00/etc/passwd",
        "dots": b"./a/./b\x00../../x",
        "empty": b"a\x00",
        "deep": b"a/b/c/d\x00../../../e/../../f",
    },
    "tar_extract": {
        "file": tar_bytes([("./index.py", REG, b"def main(req, res):\n    pass\n", 0o644)]),
        "dir-file-gz": tar_bytes([("./lib", DIR, None, 0o755),
                                  ("./lib/a.py", REG, b"x = 1\n", 0o600)], gz=True),
        "symlink-inside": tar_bytes([("a", REG, b"a", 0o644), ("lib/l", SYM, "../a", 0o777)]),
        "symlink-outside": tar_bytes([("l", SYM, "../../../victim", 0o777)]),
        "absolute": tar_bytes([("/tmp/pyrt-fuzz-absolute", REG, b"x", 0o644)]),
        "dotdot": tar_bytes([("../../../victim", REG, b"overwritten", 0o644)]),
        "hardlink": tar_bytes([("a", REG, b"a", 0o644), ("b", LNK, "a", 0o644)]),
        "hardlink-outside": tar_bytes([("b", LNK, "../../../victim", 0o644)]),
        "fifo": tar_bytes([("f", FIFO, None, 0o644)]),
        "setuid": tar_bytes([("s", REG, b"#!/bin/sh\n", 0o4755)]),
        # Each link is inside on its own; together they climb to the victim's folder.
        "symlink-chain": tar_bytes([("s", SYM, ".", 0o777), ("a", SYM, "s/..", 0o777),
                                    ("b", SYM, "a/..", 0o777), ("c", SYM, "b/..", 0o777),
                                    ("h", LNK, "c/victim", 0o644),
                                    ("c/victim", REG, b"overwritten", 0o644)]),
    },
    # Byte 0: bits 0-4 env from the first arguments, bits 5-7 positionals allowed.
    "opts": {
        "serve": b"\x20--port=8080\x00--timeout\x002.5\x00--max-body=1M\x00-c\x00/code\x00pos",
        "env": b"\x0399999\x00abc\x00--preload",
        "unknown": b"\x00--unknown",
        "no-value": b"\x00-p",
        "bad-flag": b"\x00--preload=maybe",
        "dashdash": b"\x40--\x00-p\x00x",
        "multi": b"\x00" + b"\x00".join([b"-e", b"A=1"] * 40),
        "size-suffix": b"\x00--max-body\x002GiB\x00-p8080\x00-ufoo",
    },
    "json": {
        "ascii": b"hello, world",
        "escapes": b"\"quote\\back\nnew\ttab\x01\x1f\x7f",
        "utf8": "é € 😀".encode(),
        "overlong": b"\xc0\xaf",
        "surrogate": b"\xed\xa0\x80",
        "past-max": b"\xf4\x90\x80\x80",
        "cut-short": b"ab\xe2\x82",
    },
    "ids": {
        "plain": b"abc-123_x.y",
        "dot": b".",
        "dotdot": b"..",
        "slash": b"a/b",
        "max": b"a" * 128,
        "too-long": b"a" * 129,
        "nul": b"a\x00b",
    },
}


def main() -> None:
    for name, files in SEEDS.items():
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            if not old.name.startswith("regress-"):
                old.unlink()
        for fname, data in files.items():
            (folder / fname).write_bytes(data)


if __name__ == "__main__":
    main()
