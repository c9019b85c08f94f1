"""Checks that a secret stays out of an exception and everything chained to it."""


def _error_chain(error: BaseException | None) -> list[BaseException]:
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def assert_secret_absent(error: BaseException, *parts: str) -> None:
    """No part of the secret in the error's str, repr or args, nor in its causes and contexts."""
    for item in _error_chain(error):
        for text in (str(item), repr(item), *map(repr, item.args)):
            for part in parts:
                assert part not in text, f"{part!r} leaked into {type(item).__name__}"
