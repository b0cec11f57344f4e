# The worker's built-in module (src/worker/worker.c, tasks.c), as the type checker
# sees it: pyrt registers it before Python starts, so it exists only inside pyrt.
from typing import List, Optional, Tuple, Union

_Answer = Tuple[int, List[Tuple[str, str]], bytes, int]
_Head = Tuple[bytes, bytes, List[Tuple[bytes, bytes]]]

def log(stream: int, text: str, seq: int = ..., /) -> None:
    """One context.log (stream 0) or context.error (1) line, sent to the master at once;
    a task names its execution (seq)."""

def read_frames(read: bool, /) -> List[Union[int, Tuple[int, str, bytes, Optional[_Head], bool]]]:
    """Tasks: the CALLs (tuples) and CANCELs (seqs) the master sent; one read first."""

def send_result(seq: int, answer: _Answer, /) -> int:
    """Tasks: a task's RESULT; returns the flags it was sent with."""

def output(seq: int, stream: int, data: bytes, /) -> None:
    """Tasks: whole lines a task printed (stream 0 stdout, 1 stderr)."""

def running(seq: int, /) -> None:
    """Tasks: the task whose code runs on the event loop now (0: none)."""

def cancelled(seq: int, /) -> None:
    """Tasks: the CANCEL for task seq was read (the loop turns)."""

def end_execution() -> None:
    """Tasks: nothing runs now: what the executions left running is ended and reaped."""

def epoll_wait(epfd: int, timeout: Optional[float], maxevents: int, /) -> List[Tuple[int, int]]:
    """The event loop's wait (epoll_pwait2): the (fd, events) of at most maxevents fds;
    timeout in seconds to the microsecond (None: no limit)."""
