"""Errors caused by the user's input. The CLI prints them as one line (no traceback), exit code 2."""


class UserError(Exception):
    """Bad input: the message names the file and line, or the key, and what was expected."""
