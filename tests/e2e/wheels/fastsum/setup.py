"""fastsum: a tiny compiled C extension, built offline by the toolchain tests.

Built with Debian's setuptools and wheel (python3-setuptools, python3-wheel):
    /usr/bin/python3 -m pip wheel --no-build-isolation --no-deps -w OUT .
"""

from setuptools import Extension, setup

setup(
    name="fastsum",
    version="1.0",
    packages=["fastsum"],
    ext_modules=[Extension("fastsum._fast", ["fastsum/_fast.c"])],
)
