"""`--smoke`, shared by every benchmark: the whole script end to end on tiny sizes, in seconds.

A smoke run measures nothing; it proves that the script still runs against the current engine
(tests/test_benchmarks.py runs each one so). It prints one line saying its numbers are
meaningless, and refuses `--write`, so docs/BENCHMARKS.md only ever holds real measurements.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

NOTE = "smoke run (--smoke): tiny sizes, every number below is meaningless; drop --smoke to measure"


def parse_args(parser: argparse.ArgumentParser, **tiny: Any) -> argparse.Namespace:
    """Adds `--smoke` to `parser` and parses the command line.

    Args:
        parser: The benchmark's parser, every other argument already added.
        **tiny: Argument defaults for a smoke run (e.g. `repeats=1`); flags given on the command
            line still win.

    Returns:
        The parsed arguments; `args.smoke` tells the script to shrink what its flags do not
        cover (e.g. epochs of a task run).

    Example:
        >>> args = parse_args(parser, repeats=1, epochs=2)
    """
    parser.add_argument("--smoke", action="store_true",
                        help="run end to end on tiny sizes in seconds (numbers meaningless; "
                             "tests/test_benchmarks.py runs this)")
    if parser.parse_known_args()[0].smoke:
        parser.set_defaults(**tiny)
    args = parser.parse_args()
    if args.smoke:
        if getattr(args, "write", False):
            print("error: a --smoke run measures nothing, so it never writes docs/BENCHMARKS.md. "
                  "Received: --smoke --write; drop one of them.", file=sys.stderr)
            raise SystemExit(2)
        print(NOTE, flush=True)
    return args
