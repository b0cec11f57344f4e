"""Entry point main."""


def main(context):
    return context.res.text('main')
