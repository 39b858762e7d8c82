"""What the three command-line tools (``cnscreen``, ``cntrain``, ``cnexport``) share: exit codes and error messages.

Every :class:`~cardiacnets.errors.CardiacNetsError` becomes one line on stderr, ``PROG: error: MESSAGE``, and an exit
code that says what kind of failure it was (documented in the README):

====  =====================================================================================================
0     success
1     a user error (bad option value, unusable input or bundle, bad configuration)
2     a usage error (unknown option, missing argument; typer/click)
3     an input could not be read (a single file, or some files of a batch)
4     an output could not be written (missing or read-only folder, disk full) or is in use by another run
5     the model bundle failed verification (edited or corrupted file, bad or untrusted signature, newer format)
====  =====================================================================================================

``CNS_DEBUG=1`` re-raises instead, for a traceback. Library code never prints; only the CLIs call :func:`fail`.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import typer

from cardiacnets.errors import (
    BundleIntegrityError,
    BundleVersionError,
    CardiacNetsError,
    EcgReadError,
    OutputError,
)

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_BUNDLE = 0, 1, 2, 3, 4, 5

#: Most specific first.
_EXIT_BY_ERROR: tuple[tuple[type[CardiacNetsError], int], ...] = (
    (EcgReadError, EXIT_INPUT),
    (OutputError, EXIT_OUTPUT),
    (BundleIntegrityError, EXIT_BUNDLE),
    (BundleVersionError, EXIT_BUNDLE),
)

__all__ = ["App", "EXIT_BUNDLE", "EXIT_INPUT", "EXIT_OK", "EXIT_OUTPUT", "EXIT_USAGE", "EXIT_USER", "debug",
           "exit_code", "fail", "one_line"]  # fmt: skip


def debug() -> bool:
    """True when ``CNS_DEBUG`` asks for tracebacks instead of one-line errors."""
    return os.environ.get("CNS_DEBUG", "") not in ("", "0")


def exit_code(exc: BaseException) -> int:
    """The documented exit code for an error."""
    for kind, code in _EXIT_BY_ERROR:
        if isinstance(exc, kind):
            return code
    return EXIT_USER


def one_line(text: str) -> str:
    """A message on one line (file content may hold newlines or runs of spaces)."""
    return " ".join(str(text).split())


def fail(exc: CardiacNetsError, prog: str) -> NoReturn:
    """Print ``PROG: error: MESSAGE`` to stderr and exit with :func:`exit_code` (re-raise under ``CNS_DEBUG``)."""
    if debug():
        raise exc
    sys.stderr.write(f"{prog}: error: {one_line(str(exc))}\n")
    sys.stderr.flush()
    raise SystemExit(exit_code(exc))


class App(typer.Typer):
    """A typer app whose commands report every :class:`~cardiacnets.errors.CardiacNetsError` through :func:`fail`
    (one line, the documented exit code), so no command needs its own ``try``/``except``."""

    def __init__(self, *args: Any, prog: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prog = prog

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().command(*args, **kwargs)

        def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
            register(_reporting_errors(function, self.prog))
            return function

        return decorator


def _reporting_errors(function: Callable[..., Any], prog: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except CardiacNetsError as exc:
            fail(exc, prog)

    return command
