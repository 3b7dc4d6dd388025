"""One exception hierarchy, so the CLI can map every failure to a documented exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_INVALID = 2
EXIT_INCONCLUSIVE = 3
EXIT_INTERNAL = 4  # benchgate failed (a bug or the environment), never reported as a regression


class BenchgateError(Exception):
    """Base of every error benchgate raises on purpose; the message is meant for the user."""

    exit_code = EXIT_INVALID

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as its arguments and attributes, whatever its constructor takes: the generation
        process (benchgate/run/generator_process.py) sends its errors to the command this way."""
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(cls: type[BenchgateError], args: tuple[object, ...], state: dict[str, object]) -> BenchgateError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class RequestError(BenchgateError):
    """The benchmark request (or a rules file) is invalid; carries one line per problem."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "invalid request\n" + "\n".join(f"  - {p}" for p in problems))


class ConfigurationError(BenchgateError):
    """Settings, secrets or the environment are not usable as given."""


class DatasetError(BenchgateError):
    """A dataset cannot be found, read or parsed."""


class ProviderError(BenchgateError):
    """A model call failed; `transient` says whether retrying could help (429, 5xx, network).

    `attempts` and `timeouts` count the HTTP attempts the item made and those that timed out, so a
    failed item still shows in the report's attempt and timeout counts.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status: int | None = None,
        attempts: int = 1,
        timeouts: int = 0,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.attempts = attempts
        self.timeouts = timeouts


class SandboxError(BenchgateError):
    """Model-written code cannot be run with the isolation the request asks for."""


class StoreError(BenchgateError):
    """The result store cannot be read or written."""


class ProviderConfigError(ProviderError):
    """The provider refused the configuration itself (bad key, unknown model): no item can succeed.

    Raised once; the provider then refuses further calls so a bad key never costs thousands of requests.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message, transient=False, status=status)
