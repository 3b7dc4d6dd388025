"""The gating flow: rules against the report and its per-item scores, drill-downs, outputs, then webhooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import acreate_table_artifact

from benchgate.gate.evaluate import evaluate_gate
from benchgate.gate.webhooks import deliver_webhooks
from benchgate.report.drilldown import attach_drilldowns, drilldown_rows
from benchgate.report.formats import GATE_FILES, write_outputs
from benchgate.report.markdown import render_gate_markdown
from benchgate.spec.gate import GateSpec
from benchgate.spec.report import Report
from benchgate.store import Store
from flows.json_flow import json_flow


@json_flow(name="gate", flow_run_name="gate · {report[benchmarkId]}", persist_result=False)
async def gate(
    report: dict[str, Any], gate_spec: dict[str, Any], store_url: str, out_dir: str
) -> dict[str, Any]:
    """Returns the decision as gate.json has it, its markdown, and the exit code."""
    spec = GateSpec.model_validate(gate_spec)
    store = Store(store_url)
    parsed = Report.model_validate(report)
    benchmark_id = parsed.benchmark_id
    decision = evaluate_gate(
        parsed, spec, lambda model_id, task: store.read_scores(benchmark_id, model_id, task)
    )
    attach_drilldowns(decision, parsed, spec.baseline, store)
    decision.deliveries = deliver_webhooks(decision, parsed, spec)
    write_outputs(Path(out_dir), parsed.model_copy(update={"gate": decision}), GATE_FILES)
    get_run_logger().info("gate %s: %s", benchmark_id, decision.decision)
    rows = drilldown_rows(decision)
    if rows:
        await acreate_table_artifact(
            rows, key=f"benchgate-{benchmark_id}-drilldown", description="items that moved most, per rule"
        )
    return {
        "decision": decision.to_dict(),
        "markdown": render_gate_markdown(decision),
        "exit_code": decision.exit_code(),
    }
