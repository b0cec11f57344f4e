"""Entry point d."""


def main(context):
    return context.res.text('d')
