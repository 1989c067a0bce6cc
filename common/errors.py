"""The exception for bad user input."""

from __future__ import annotations

# Every character `str.splitlines` breaks a line at, shown escaped (`\n`, `\u2028`) instead.
_LINE_BREAKS = {ord(character): repr(character)[1:-1]
                for character in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


class InputError(ValueError):
    r"""Bad input from the user: a missing file, a wrong column, an invalid value.

    The task CLIs print it as one line `error: <message>` on stderr and exit with code 2, with no
    traceback. Messages say what was received and how to fix it.

    The message is always one line: a line break inside a value it quotes (a column name such as
    `"price\nin euros"`, a file name) is shown escaped, as `\n`.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(str(message).translate(_LINE_BREAKS), *args)
