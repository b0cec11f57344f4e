"""Entry point index."""


def main(context):
    return context.res.text('index')
