"""The final Prefect state of a scheduled or event-triggered benchmark, so automations can react to it."""

from __future__ import annotations

from typing import Any

from prefect.states import Completed, Failed, State

from benchgate.errors import EXIT_OK

_OUTCOMES = {1: "the gate failed", 2: "the benchmark failed", 3: "the result is inconclusive"}


def final_state(result: dict[str, Any]) -> State[Any]:
    """Completed when the run would exit 0; otherwise Failed, its reports already written.

    Nobody waits on a nightly or release run's exit code, so the run's state is what notifications
    and automations ("when a flow run fails") see; the result travels with the state either way.
    """
    code = int(result["exit_code"])
    report = result["report"]
    where = f"benchmark {report['benchmarkId']} ({report['name']})"
    if code == EXIT_OK:
        return Completed(message=f"{where}: passed", data=result)
    return Failed(message=f"{where}: {_OUTCOMES.get(code, f'exit {code}')} (exit {code})", data=result)
