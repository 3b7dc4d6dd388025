"""The GitHub Action's steps (action.yml), in Python so they are typed and tested rather than shell.

    python -m benchgate.interfaces.github annotate OUT/gate.json
    python -m benchgate.interfaces.github outputs --out OUT --exit-code N [--report REPORT]
    python -m benchgate.interfaces.github comment --body OUT/report.md --key KEY --exit-code N

`annotate` prints workflow commands (::error / ::warning) for the rules that did not plainly pass;
`outputs` appends decision, exit-code and report to $GITHUB_OUTPUT; `comment` keeps one pull-request
comment per key up to date, found again by a hidden marker. Only `comment` uses the token
($GITHUB_TOKEN), and it runs installed benchgate code, never the request's scorers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx

from benchgate.errors import EXIT_INTERNAL, EXIT_INVALID, EXIT_OK
from benchgate.spec.report import GateDecision, Verdict

COMMENT_LIMIT = 65_536  # GitHub refuses longer issue comments (characters)
# An HTML comment may not contain "--": the key is words joined by single dashes.
KEY_PATTERN = re.compile(r"[\w.:/@+]+(?:-[\w.:/@+]+)*")
NO_GATE = {EXIT_INVALID: "invalid", EXIT_INTERNAL: "error"}  # decision when no gate.json was written
ANNOTATED = {Verdict.FAIL: "error", Verdict.WARN: "warning", Verdict.INCONCLUSIVE: "warning"}


def escape_data(text: str) -> str:
    """A workflow command's message: a raw newline or % would end or garble the command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: additionally ':' and ',' separate properties."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def read_gate(path: Path) -> GateDecision | None:
    """gate.json, or None when benchgate wrote none (an invalid request or a crash)."""
    if not path.is_file():
        return None
    return GateDecision.model_validate_json(path.read_text(encoding="utf-8"))


def annotation_lines(gate: GateDecision) -> list[str]:
    """One ::error per failed rule, one ::warning per warned or inconclusive rule, in the gate's order."""
    lines = []
    for rule in gate.rules:
        level = ANNOTATED.get(rule.verdict)
        if level:
            title = escape_property(f"benchgate {rule.verdict}: {rule.rule}")
            message = escape_data(f"{rule.rule} ({rule.model} on {rule.task}): {rule.reason}")
            lines.append(f"::{level} title={title}::{message}")
    return lines


def annotate(gate_json: Path) -> int:
    gate = read_gate(gate_json)
    if gate is None:
        print(f"::notice::{escape_data(f'benchgate wrote no {gate_json}, so no rule annotations')}")
    else:
        for line in annotation_lines(gate):
            print(line)
    return EXIT_OK


def output_lines(name: str, value: str) -> str:
    """$GITHUB_OUTPUT's heredoc form, safe for any value: a fresh delimiter that the value cannot contain."""
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def decision_of(gate: GateDecision | None, exit_code: int) -> str:
    if gate is not None:
        return str(gate.decision)
    return NO_GATE.get(exit_code, "none")


def outputs(out: Path, exit_code: int, report: str) -> int:
    target = os.environ.get("GITHUB_OUTPUT")
    if not target:
        print("benchgate: GITHUB_OUTPUT is not set (not in GitHub Actions?)", file=sys.stderr)
        return EXIT_INVALID
    values = {
        "decision": decision_of(read_gate(out / "gate.json"), exit_code),
        "exit-code": str(exit_code),
        "report": report or str(out / "report.json"),
    }
    with open(target, "a", encoding="utf-8") as handle:
        handle.write("".join(output_lines(name, value) for name, value in values.items()))
    return EXIT_OK


def comment_body(markdown: str, key: str, run_url: str | None) -> str:
    """The marker, the report and a link to the run, trimmed at a line to fit GitHub's limit."""
    marker = f"<!-- benchgate:{key} -->\n"
    footer = f"\n\n---\n[benchgate run]({run_url})\n" if run_url else "\n"
    report = markdown.rstrip("\n")
    room = COMMENT_LIMIT - len(marker) - len(footer)
    if len(report) > room:
        note = "\n\n… _report truncated to GitHub's comment limit: the full report.md is in the job summary._"
        cut = report[: room - len(note)]
        report = cut[: cut.rfind("\n")] + note if "\n" in cut else cut + note
    return marker + report + footer


def pull_request_number(event_path: str | None) -> int | None:
    if not event_path or not Path(event_path).is_file():
        return None
    event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    number = (event.get("pull_request") or {}).get("number")
    return number if isinstance(number, int) else None


def find_comment(client: httpx.Client, comments_url: str, marker: str) -> int | None:
    """The id of the first comment that starts with the marker, following the Link header's pages."""
    url: str | None = comments_url
    params: dict[str, int] | None = {"per_page": 100}
    while url:
        response = client.get(url, params=params)
        response.raise_for_status()
        for comment in response.json():
            if (comment.get("body") or "").lstrip().startswith(marker):
                return int(comment["id"])
        url, params = response.links.get("next", {}).get("url"), None  # the next URL has its query
    return None


def upsert_comment(client: httpx.Client, repository: str, number: int, body: str) -> str:
    """PATCH the comment carrying the body's marker line, or POST one; returns what was done and where."""
    comments = f"/repos/{repository}/issues/{number}/comments"
    existing = find_comment(client, comments, body.split("\n", 1)[0])
    if existing is None:
        response = client.post(comments, json={"body": body})
    else:
        response = client.patch(f"/repos/{repository}/issues/comments/{existing}", json={"body": body})
    response.raise_for_status()
    return f"{'created' if existing is None else 'updated'} comment {response.json().get('html_url', '')}"


def comment(body_file: Path, key: str, exit_code: int) -> int:
    if not KEY_PATTERN.fullmatch(key):
        print(f"benchgate: comment key {key!r}: use letters, digits and . : / @ + _ -", file=sys.stderr)
        return EXIT_INVALID
    number = pull_request_number(os.environ.get("GITHUB_EVENT_PATH"))
    if number is None:
        event = os.environ.get("GITHUB_EVENT_NAME", "unknown")
        print(f"::notice::benchgate: not a pull request (event {escape_data(event)}), so no comment")
        return EXIT_OK
    token, repository = os.environ.get("GITHUB_TOKEN"), os.environ.get("GITHUB_REPOSITORY")
    if not token or not repository:
        print("benchgate: commenting needs GITHUB_TOKEN and GITHUB_REPOSITORY", file=sys.stderr)
        return EXIT_INVALID
    server, run = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_RUN_ID")
    run_url = f"{server}/{repository}/actions/runs/{run}" if server and run else None
    markdown = (
        body_file.read_text(encoding="utf-8")
        if body_file.is_file()
        else f"**benchgate** exited {exit_code} without a report: see the job log."
    )
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "benchgate",
    }
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    with httpx.Client(base_url=api, headers=headers, timeout=30) as client:
        try:
            done = upsert_comment(client, repository, number, comment_body(markdown, key, run_url))
        except httpx.HTTPError as error:  # the message names the URL and status, never the token
            print(f"::warning::benchgate could not comment on #{number}: {escape_data(str(error))}")
            return EXIT_INTERNAL
    print(f"benchgate: {done} on #{number}")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    commands = argparse.ArgumentParser(
        prog="python -m benchgate.interfaces.github",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = commands.add_subparsers(dest="command", required=True)
    annotate_cmd = sub.add_parser("annotate", help="::error/::warning lines for the rules in gate.json")
    annotate_cmd.add_argument("gate_json", type=Path)
    outputs_cmd = sub.add_parser("outputs", help="append decision, exit-code and report to $GITHUB_OUTPUT")
    outputs_cmd.add_argument("--out", type=Path, required=True, help="benchgate's output directory")
    outputs_cmd.add_argument("--exit-code", type=int, required=True, help="benchgate's exit code")
    outputs_cmd.add_argument("--report", default="", help="the gated report.json (empty: OUT/report.json)")
    comment_cmd = sub.add_parser("comment", help="create or update this key's pull-request comment")
    comment_cmd.add_argument("--body", type=Path, required=True, help="markdown file, e.g. OUT/report.md")
    comment_cmd.add_argument("--key", default="default", help="keeps separate comments per job")
    comment_cmd.add_argument("--exit-code", type=int, default=EXIT_OK, help="named when there is no body")
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "annotate":
        return annotate(args.gate_json)
    if args.command == "outputs":
        return outputs(args.out, args.exit_code, args.report)
    return comment(args.body, args.key, args.exit_code)


if __name__ == "__main__":
    sys.exit(main())
