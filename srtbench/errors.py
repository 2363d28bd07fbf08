"""The one exception type a user may see: it carries a one-line message and the CLI turns it into exit 2."""


class SrtbenchError(Exception):
    """Bad input or a broken file: printed as one line by the CLI, never as a traceback."""

    exit_code = 2
