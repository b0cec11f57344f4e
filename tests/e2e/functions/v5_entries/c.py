"""Entry point c."""


def main(context):
    return context.res.text('c')
