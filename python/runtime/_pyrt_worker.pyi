# The worker's built-in module (src/worker/worker.c), as the type checker sees it:
# pyrt registers it before Python starts, so it exists only inside pyrt.

def log(stream: int, text: str, /) -> None:
    """One context.log (stream 0) or context.error (1) line, sent to the master at once."""
