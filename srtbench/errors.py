"""The one exception type a user may see: it carries a one-line message and the CLI turns it into exit 2."""


class SrtbenchError(Exception):
    """Bad input or a broken file: printed as one line by the CLI, never as a traceback."""

    exit_code = 2


def describe(err: BaseException, limit: int = 200) -> str:
    """`TypeName: first line of the message`, cut to `limit` characters: a foreign exception inside one line."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
