"""A compiled extension: add() is implemented in C (fastsum/_fast.c)."""

from fastsum._fast import add, compiled_with

__all__ = ["add", "compiled_with"]
