"""The exception for bad user input."""


class InputError(ValueError):
    """Bad input from the user: a missing file, a wrong column, an invalid value.

    The task CLIs print it as one line `error: <message>` on stderr and exit with code 2, with no
    traceback. Messages say what was received and how to fix it.
    """
