"""Entry point a."""


def main(context):
    return context.res.text('a')
