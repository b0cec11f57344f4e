"""Imports a module that does not exist."""
import pyrt_e2e_no_such_module  # noqa: F401


def main(context):
    return context.res.text('never')
