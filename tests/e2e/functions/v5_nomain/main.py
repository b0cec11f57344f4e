"""Defines no `main`: a v5 server answers 503."""

handler = 1
