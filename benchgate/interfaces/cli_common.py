"""What every `benchgate` command shares: the Typer app, the --store option and the user-error rule.

Exit codes: 0 gate passed, 1 gate failed, 2 invalid request or configuration, 3 inconclusive,
4 benchgate itself failed (a crash is never reported as 1, which CI reads as "the model regressed").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

import typer

from benchgate.errors import BenchgateError, SandboxError
from scorers.sandbox import SandboxUnavailable

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Continuous evaluation of LLMs as a CI/CD quality gate."
)


StoreOption = Annotated[
    str | None, typer.Option("--store", envvar="BENCHGATE_STORE", help="Store root (path or fsspec URL).")
]
Command = TypeVar("Command", bound=Callable[..., None])


def _fail(error: BenchgateError) -> typer.Exit:
    typer.echo(f"benchgate: {error}", err=True)
    return typer.Exit(error.exit_code)


def user_errors(command: Command) -> Command:
    """A BenchgateError is the user's to fix: print its message and exit with its code, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except BenchgateError as error:
            raise _fail(error) from None
        except SandboxUnavailable as error:  # model-written code cannot be contained here: exit 2
            raise _fail(SandboxError(str(error))) from None

    return cast(Command, wrapper)
