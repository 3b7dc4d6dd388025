"""The request of a flow run, checked against the policy in force where it runs.

With BENCHGATE_POLICY set, every request is held to that file. Without it, the safe defaults apply to a
deployment run of the flow that takes whole requests from outside (`benchmark/on-demand`, what the API
starts; anyone reaching Prefect can start one with any request), exactly as the API holds its callers;
requests the operator's own files define (nightly, release) and in-process runs (`benchgate run`, the
API's process pool, already checked) are as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect.context import FlowRunContext

from benchgate.run.policy import policy_in_force, request_check
from benchgate.run.validation import parse_request
from benchgate.settings import settings
from benchgate.spec.request import BenchmarkRequest


def checked_request(
    request: dict[str, Any], store_url: str | None, *, entry: Callable[..., Any] | None = None
) -> BenchmarkRequest:
    """The parsed request, or RequestError with the policy's problems before anything is read.

    `entry`: the function of the flow whose own deployment runs take requests from outside; a body
    called through `.fn` from another flow (nightly, release) is that flow's, not an entry.
    """
    context = FlowRunContext.get()
    deployed = bool(context and context.flow_run and context.flow_run.deployment_id)
    running = context.flow if context else None
    untrusted = deployed and entry is not None and running is not None and running.fn is entry
    # A deployment run's store_url is a parameter like the request: the worker's own store counts.
    store = settings().store if deployed or not store_url else store_url
    return parse_request(request, check=request_check(policy_in_force(untrusted), store))
