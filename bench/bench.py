#!/usr/bin/env python3
"""pyrt's benchmark: `make bench`, `make bench-smoke`, or

    /usr/bin/python3 bench/bench.py [--smoke] [--servers pyrt,ceiling,...] [--runs N]
        [--duration S] [--out DIR] [--pyrt-bin PATH] [--ceiling-bin PATH]

The code is the package beside this file, bench/pyrtbench/ (its __init__ says what is
measured and how; --help lists the options).
"""

import sys

from pyrtbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
