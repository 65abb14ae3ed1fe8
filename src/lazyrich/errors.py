"""One exception type for bad input: its message is one line saying what is wrong and how to fix it."""


class LazyrichError(ValueError):
    """Bad input. The CLI prints the message alone and exits with code 2."""


def require(condition: bool, message: str) -> None:
    """Raise `LazyrichError(message)` unless `condition` holds."""
    if not condition:
        raise LazyrichError(message)
