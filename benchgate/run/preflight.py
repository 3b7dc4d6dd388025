"""What a run checks on the machine that will run it, before any model is called."""

from __future__ import annotations

from benchgate.errors import SandboxError
from benchgate.evaltasks import metric_infos
from benchgate.spec.request import BenchmarkRequest, TaskSpec
from scorers.sandbox import SandboxUnavailable, isolation_mode


def check_sandbox(request: BenchmarkRequest, specs: list[TaskSpec]) -> None:
    """Raise SandboxError, before any model is called, if tasks that run model-written code (pass@k)
    could not run it here: `sandbox: required` needs bubblewrap, `auto` any isolation that contains it."""
    if any(m.kind == "pass@k" for spec in specs for m in metric_infos(spec)):
        try:
            isolation_mode(require_isolation=request.sandbox == "required")
        except SandboxUnavailable as error:
            raise SandboxError(str(error)) from None


def preflight(request: BenchmarkRequest) -> dict[str, str | None]:
    """Fail before any flow starts when a model's secret cannot be resolved, or model-written code
    could not run here as `sandbox:` asks (work-pool workers check for themselves). Returns each
    model's key, for the generation process (which does not import Prefect to read a Secret block)."""
    from benchgate.secrets import resolve_api_key

    keys = {model.id: resolve_api_key(model) for model in request.models}
    if request.execution == "local":
        check_sandbox(request, request.tasks)
    return keys
