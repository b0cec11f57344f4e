"""v5 function using a dependency installed by `pyrt build` (requirements.txt is written
by the test)."""
import pyrtdemo


def main(context):
    return context.res.json({'demo': pyrtdemo.VALUE, 'body': context.req.body_text})
