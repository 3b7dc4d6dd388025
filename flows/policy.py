"""The request of a flow run, checked against the policy in force where it runs.

A deployment run's parameters come from whoever reaches Prefect (the API, `prefect deployment run`, an
event), so such a run is held to the operator's policy, or to the safe defaults without one, exactly
as the API holds its callers; an in-process run (`benchgate run`, the API's own process pool, already
checked) is held to a policy only when BENCHGATE_POLICY names one.
"""

from __future__ import annotations

from typing import Any

from prefect.context import FlowRunContext

from benchgate.run.policy import policy_in_force, request_check
from benchgate.run.validation import parse_request
from benchgate.settings import settings
from benchgate.spec.request import BenchmarkRequest


def checked_request(request: dict[str, Any], store_url: str | None) -> BenchmarkRequest:
    """The parsed request, or RequestError with the policy's problems before anything is read."""
    context = FlowRunContext.get()
    from_deployment = bool(context and context.flow_run and context.flow_run.deployment_id)
    # A deployment run's store_url is a parameter like the request: the worker's own store counts.
    store = settings().store if from_deployment or not store_url else store_url
    return parse_request(request, check=request_check(policy_in_force(untrusted=from_deployment), store))
