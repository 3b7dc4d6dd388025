"""The `benchgate` command line.

Exit codes: 0 gate passed, 1 gate failed, 2 invalid request or configuration, 3 inconclusive,
4 benchgate itself failed (a crash is never reported as 1, which CI reads as "the model regressed").
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import logging
import os
import sys
import traceback
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from benchgate.errors import EXIT_INTERNAL, EXIT_OK, ConfigurationError
from benchgate.interfaces.cli_common import StoreOption, app, user_errors
from benchgate.run.validation import load_request
from benchgate.settings import quiet_prefect, settings
from benchgate.spec.report import GateDecision, Report, format_number

if TYPE_CHECKING:
    from prefect import Flow

    from benchgate.interfaces.embedded import EmbeddedServer
    from benchgate.run.generator_process import GeneratorProcess
    from benchgate.spec.request import BenchmarkRequest


def print_summary(report: Report, exit_code: int) -> None:
    for task, section in report.report.items():
        typer.echo(f"\n{task} ({section.dataset})")
        for row in section.results:
            metrics = "  ".join(f"{k}={format_number(v)}" for k, v in row.metrics.items() if v is not None)
            typer.echo(f"  {row.model:<24} {metrics}")
        for model, detail in report.task_details(task).items():
            if detail.failure:
                typer.echo(f"  {model:<24} FAILED: {detail.failure}")
            elif detail.inconclusive:
                typer.echo(f"  {model:<24} inconclusive: {detail.n_errors} of {detail.n_items} items errored")
    verdict = report.gate.decision if report.gate else "no gate"
    typer.echo(f"\nbenchmark {report.benchmark_id}: {report.status}; gate: {verdict}; exit {exit_code}")


@app.command()
@user_errors
def validate(request: Path = typer.Argument(..., help="Benchmark request (YAML or JSON).")) -> None:
    """Validate a request without running it."""
    parsed = load_request(request)
    typer.echo(f"{request}: valid ({len(parsed.models)} models x {len(parsed.tasks)} tasks)")


@contextmanager
def _kept_out_of_gc() -> Iterator[None]:
    """What `run` imports and sets up before its flow lives as long as the process: the cyclic
    garbage collector neither scans it as it arrives (a sixth of start-up) nor in any later
    collection, whose pauses stalled the event loop with requests in flight (0.07-0.12 s each at
    5,000 items). Then the collector runs at the thresholds of a run."""
    gc.disable()
    try:
        yield
    finally:
        from benchgate.run.generator_process import RUN_GC_THRESHOLDS

        gc.freeze()
        gc.set_threshold(*RUN_GC_THRESHOLDS)
        gc.enable()


@app.command()
@user_errors
def run(
    request: Path = typer.Argument(..., help="Benchmark request (YAML or JSON)."),
    out: Path | None = typer.Option(
        None, "--out", help="Directory for report.json, report.md, junit.xml, gate.json."
    ),
    store: StoreOption = None,
) -> None:
    """Run the benchmark flow and the gate."""
    with _kept_out_of_gc():
        from benchgate.interfaces.embedded import EmbeddedServer
        from benchgate.run.policy import configured_policy, request_check

        # Your own run: held to a policy only when BENCHGATE_POLICY names one.
        parsed = load_request(request, check=request_check(configured_policy(), store or settings().store))
        # A key in a Prefect Secret block is read through Prefect, hence its server: the generation
        # process then starts once both are there, not before.
        keys_need_prefect = any(model.api_key_secret for model in parsed.models)
        generator = None if keys_need_prefect else _start_generator(parsed, store)
    try:
        with _kept_out_of_gc():
            quiet_prefect()
            server = EmbeddedServer.start_if_unconfigured()  # boots while Prefect is imported below
            if generator is None and keys_need_prefect:
                generator = _start_generator(parsed, store)
        last_task_run = None
        try:
            with _kept_out_of_gc():
                from flows.benchmark import benchmark
            result = asyncio.run(_run_benchmark(benchmark, parsed, generator, server, out, store))
            last_task_run = result["lastTaskRun"]
        finally:
            if server is not None:
                server.stop(last_task_run)  # once it has recorded the run
    finally:
        if generator is not None:
            generator.stop()
    print_summary(Report.model_validate(result["report"]), result["exit_code"])
    if out:
        typer.echo(f"outputs in {out}")
    raise typer.Exit(result["exit_code"])


def _start_generator(parsed: BenchmarkRequest, store: str | None) -> GeneratorProcess | None:
    """After the preflight (keys resolve, code can be sandboxed: no model is called otherwise), the
    generation process, which starts the first models x tasks at once (benchgate/run/generator_process.py).
    A work-pool run generates in its lanes' processes."""
    from benchgate.report.build import new_benchmark_id
    from benchgate.run.generator_process import GeneratorProcess
    from benchgate.run.preflight import preflight

    keys = preflight(parsed)
    if parsed.execution != "local":
        return None
    return GeneratorProcess.start(parsed, new_benchmark_id(), store, settings().max_concurrent_subflows, keys)


async def _run_benchmark(
    benchmark: Flow[..., Coroutine[Any, Any, dict[str, Any]]],
    parsed: BenchmarkRequest,
    generator: GeneratorProcess | None,
    server: EmbeddedServer | None,
    out: Path | None,
    store: str | None,
) -> dict[str, Any]:
    """The benchmark flow, its subflows generating in the generation process, which started the first
    models x tasks before the flow: the temporary server's boot and the flow runs' creation happen
    while the model answers."""
    from benchgate.report.build import new_benchmark_id
    from benchgate.run import generator_process
    from benchgate.run.evaluation import import_pandas_ahead

    benchmark_id = generator.benchmark_id if generator is not None else new_benchmark_id()
    try:
        with generator_process.generating_in(generator):
            # Scoring needs pandas; the client mostly waits for the server until the first shard.
            import_pandas_ahead()
            if server is not None:
                await asyncio.to_thread(server.wait_ready)
            return await benchmark(
                parsed.model_dump(mode="json"),
                out_dir=str(out) if out else None,
                benchmark_id=benchmark_id,
                store_url=store,
            )
    finally:
        if generator is not None:
            await generator.aclose()


@app.command()
@user_errors
def score(
    task: str = typer.Argument(..., help="question-answering, text-summarization or code-generation."),
    predictions: Path = typer.Option(..., "--predictions", help="Predictions in the ecosystem's format."),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset file in its original format."),
    out: Path | None = typer.Option(None, "--out", help="Write one JSON line per item here."),
) -> None:
    """Score predictions made elsewhere; prints the metrics as one JSON object."""
    from benchgate.evaltasks.offline import score_predictions

    metrics = score_predictions(task, str(predictions), dataset, str(out) if out else None)
    typer.echo(json.dumps(metrics))


@app.command()
@user_errors
def gate(
    report: Path = typer.Argument(..., help="A report.json written by `benchgate run`."),
    rules: Path = typer.Option(
        ..., "--rules", help="Gate rules file (YAML or JSON, the request's `gate` section)."
    ),
    out: Path = typer.Option(Path("out"), "--out", help="Directory for gate.json, junit.xml, report.md."),
    store: StoreOption = None,
) -> None:
    """Gate an existing report against rules, using its stored per-item scores."""
    from benchgate.gate.rules_file import load_report_and_rules

    report_data, spec = load_report_and_rules(report, rules)
    quiet_prefect()
    from benchgate.report.build import append_step_summary
    from benchgate.report.formats import write_outputs
    from benchgate.store import Store
    from flows.gate import gate as gate_flow

    out.mkdir(parents=True, exist_ok=True)
    rules_data = spec.model_dump(mode="json")
    decision = asyncio.run(gate_flow(report_data.to_dict(), rules_data, Store(store).url, str(out)))
    gated = report_data.model_copy(update={"gate": GateDecision.model_validate(decision["decision"])})
    append_step_summary(write_outputs(out, gated, ["report.md"])["report.md"])
    typer.echo(decision["markdown"])
    raise typer.Exit(decision["exit_code"])


@app.command()
@user_errors
def server(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 127.0.0.1 unless you mean otherwise."),
    port: int = typer.Option(4200, help="Port of the Prefect UI and API."),
) -> None:
    """Start a Prefect server for the UI (SQLite by default)."""
    quiet_prefect()
    os.execvp(
        sys.executable,
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
    )


@app.command()
@user_errors
def api(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 127.0.0.1 unless you mean otherwise."),
    port: int = typer.Option(8000, help="Port of the HTTP API."),
    no_auth_local: bool = typer.Option(False, "--no-auth-local", help="Allow no token, on 127.0.0.1 only."),
    deployment: str | None = typer.Option(
        None, "--deployment", envvar="BENCHGATE_API_DEPLOYMENT", help="Run through this Prefect deployment."
    ),
    store: StoreOption = None,
    processes: int = typer.Option(2, "--processes", help="Benchmarks run at once without a deployment."),
) -> None:
    """Serve the HTTP API (token from BENCHGATE_API_TOKEN)."""
    import uvicorn

    from benchgate.interfaces.api import ApiSettings, check_bind, create_app

    token = settings().token
    check_bind(host, token, no_auth_local)
    if deployment and not os.environ.get("PREFECT_API_URL"):
        raise ConfigurationError("--deployment needs PREFECT_API_URL (the Prefect server its workers poll)")
    quiet_prefect()
    api_settings = ApiSettings(token=token, store_url=store, deployment=deployment, processes=processes)
    uvicorn.run(create_app(api_settings), host=host, port=port, log_level="warning")


@app.command()
@user_errors
def submit(
    request: Path = typer.Argument(..., help="Benchmark request (YAML or JSON)."),
    api_url: str = typer.Option(..., "--api", envvar="BENCHGATE_API_URL", help="e.g. http://127.0.0.1:8000"),
    wait: bool = typer.Option(False, "--wait", help="Wait for the report; exit as `benchgate run` would."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Seconds to wait with --wait."),
) -> None:
    """Submit a request to the HTTP API (token from BENCHGATE_API_TOKEN)."""
    from benchgate.interfaces.client import ApiClient

    client = ApiClient(api_url, settings().token)
    try:
        benchmark_id = client.submit(load_request(request).model_dump(mode="json"))
        typer.echo(f"submitted {benchmark_id}")
        if not wait:
            raise typer.Exit(EXIT_OK)
        report = client.wait(benchmark_id, timeout=timeout)
    finally:
        client.close()
    parsed = Report.model_validate(report)
    if parsed.status == "failed":
        typer.echo(f"benchmark {benchmark_id} failed: {parsed.error or 'see its report'}", err=True)
    else:
        print_summary(parsed, parsed.exit_code())
    raise typer.Exit(parsed.exit_code())


@app.command()
@user_errors
def history(
    task: str | None = typer.Option(None, "--task", help="Only this evaluation task."),
    metric: str | None = typer.Option(None, "--metric", help="Only this metric."),
    name: str | None = typer.Option(None, "--name", help="Only benchmarks of this name."),
    last: int = typer.Option(10, "--last", help="Runs shown per model and metric."),
    store: StoreOption = None,
) -> None:
    """Each model's metrics over time, with the change since the previous run (drops flagged)."""
    from benchgate.report.history import read_history, trend
    from benchgate.store import Store

    rows = trend(read_history(Store(store), task=task, metric=metric, name=name), last=last)
    if not rows:
        typer.echo("no history recorded yet")
        return
    for row in rows:
        change = format_number(row.change, "+.4g", missing="")
        flag = "  DROP" if row.dropped else ""
        typer.echo(
            f"{row.task:<20} {row.model:<16} {row.metric:<12} {row.completed_at}  {row.benchmark_id}  "
            f"{format_number(row.value, '>8.4g')} {change:>9}{flag}"
        )


@app.command()
@user_errors
def release(
    model_id: str = typer.Argument(..., help="The released model's id (the event resource is model.<id>)."),
    provider: str = typer.Option(
        ..., "--provider", help="openai | anthropic | gemini | openai-compatible | builtin"
    ),
    model: str | None = typer.Option(None, "--model", help="The provider's model name (default: the id)."),
    base_url: str | None = typer.Option(None, "--base-url", help="Endpoint, for openai-compatible servers."),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="Env var holding the key, on the worker."
    ),
) -> None:
    """Emit `model.released` to the Prefect API: the on-model-release deployment gates the model."""
    quiet_prefect()
    from benchgate.run.release import EVENT, emit_release, release_payload

    payload = release_payload(model_id, provider, model, base_url, api_key_env)
    event_id = asyncio.run(emit_release(payload))
    typer.echo(f"emitted {EVENT} for model.{model_id} ({event_id}): {json.dumps(payload)}")


@app.command()
@user_errors
def tasks() -> None:
    """List the built-in evaluation tasks and the metrics a custom task can use."""
    from benchgate.interfaces.preview import render_catalog

    typer.echo(render_catalog())


@app.command()
@user_errors
def preview(
    request: Path = typer.Argument(..., help="Benchmark request (YAML or JSON)."),
    task: str | None = typer.Option(None, "--task", help="Evaluation task to show (default: every task)."),
    n: int = typer.Option(3, "-n", min=1, help="How many items to render per task."),
) -> None:
    """Render the first prompts and targets of a request's tasks, without calling any model."""
    from benchgate.errors import RequestError
    from benchgate.interfaces.preview import first_examples, render_examples

    parsed = load_request(request)
    names = [t.task for t in parsed.tasks]
    if task is not None and task not in names:
        raise RequestError([f"--task: unknown evaluation task {task!r} (tasks: {', '.join(names)})"])
    for spec in parsed.tasks:
        if task is None or spec.task == task:
            dataset, examples = first_examples(spec, n)
            typer.echo(render_examples(spec.task, dataset, examples))


import benchgate.interfaces.cli_review  # noqa: E402, F401 - registers the review commands after these


def main() -> None:
    """The console entry point: anything unexpected exits 4 with its traceback, never 1."""
    status: list[int] = []
    atexit.register(_end_without_teardown, status)  # first registered, so it runs after Prefect's
    try:
        app()
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            status.append(done.code or 0)
        raise
    except Exception:
        traceback.print_exc()
        typer.echo("benchgate: internal error (exit 4); the traceback above says where", err=True)
        status.append(EXIT_INTERNAL)
        sys.exit(EXIT_INTERNAL)


def _end_without_teardown(status: list[int]) -> None:
    """Exit once every other exit handler ran, skipping the interpreter's teardown.

    By now Prefect's threads have sent their last logs and events, and every store file was closed
    by its writer; what is left is freeing Prefect's, pandas' and the run's objects one by one, 0.3-0.5 s
    of every command, paid thousands of times by a gate that runs on each change.
    """
    if not status:  # not an exit this entry point saw (an interrupt): the interpreter ends as usual
        return
    logging.shutdown()  # registered before this handler, so it would otherwise not run
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status[0])


if __name__ == "__main__":
    main()
