"""A syntax error on line 3."""
def main(context)
    return context.res.text('never')
