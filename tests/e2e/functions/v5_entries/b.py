"""Entry point b."""


def main(context):
    return context.res.text('b')
