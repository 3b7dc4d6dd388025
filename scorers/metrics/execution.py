"""pass@k: every sample, followed by the item's tests, runs as one program in the sandbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from scorers.metrics.entry import Batch, Metric
from scorers.passk import per_problem_pass_at_k
from scorers.sandbox import check_programs


def pass_at_k(
    programs: Mapping[str, Sequence[str]], ks: Sequence[int], *, timeout: float, require_isolation: bool
) -> dict[str, dict[str, float]]:
    """{item: {"pass@k": percent}}: every program (a sample plus its tests) runs in the sandbox."""
    flat = [(item, program) for item, item_programs in programs.items() for program in item_programs]
    results = iter(check_programs([p for _, p in flat], timeout=timeout, require_isolation=require_isolation))
    passed = {item: [next(results).passed for _ in item_programs] for item, item_programs in programs.items()}
    return {
        item: {name: 100.0 * value for name, value in estimates.items()}
        for item, estimates in per_problem_pass_at_k(passed, ks).items()
    }


def _score(batch: Batch) -> list[dict[str, float]]:
    programs = {
        str(i): [f"{sample}\n\n{fields['tests']}\n" for sample in samples]
        for i, (samples, fields) in enumerate(zip(batch.predictions, batch.fields, strict=True))
    }
    estimates = pass_at_k(
        programs, batch.ks, timeout=batch.timeout, require_isolation=batch.require_isolation
    )
    return [estimates[str(i)] for i in range(len(batch.predictions))]


METRICS = (
    Metric(
        "pass@k",
        "pass@k",
        "percent",
        "unbiased pass@k over `samples` generations: the prediction plus the item's `tests` is run "
        "in the sandbox and passes if it exits normally; reported as pass@1, pass@10, ... per `k`",
        "5 samples, 2 pass: pass@1 = 40, pass@5 = 100",
        score_batch=_score,
        needs_reference=False,
        needs=("tests",),
    ),
)
