"""Where the parity tests' full-size data comes from, and proof that it is the data the references describe.

Every file is listed in tests/reference/manifest.json with its size, sha256 and public source. A file is
looked for, in order:

1. in `BENCHGATE_TEST_DATA` (default `../shared/data`; a relative value is taken from the repository root,
   so it means the same wherever pytest runs);
2. in the cache (`BENCHGATE_TEST_DATA_CACHE`, default `~/.cache/benchgate/test-data`), filled by step 3;
3. from its source: a pinned revision on the Hugging Face hub, an installed package, or a deterministic
   derivation from other manifest files.

Whatever is found is checked against the manifest's sha256 (once per session: hashing 60 MB per test would
cost more than some tests), and a mismatch raises instead of falling through to the next place, because a
corrupt or different copy must be fixed, not silently bypassed. The reference scores are not data: they
live in tests/reference/ so that no data directory can change what the tests expect.

pytest collects this module by its name: keep `test`-prefixed names out of it.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_DIR = REPO_ROOT / "tests" / "reference"
MANIFEST = REFERENCE_DIR / "manifest.json"
DATA_ENV = "BENCHGATE_TEST_DATA"
CACHE_ENV = "BENCHGATE_TEST_DATA_CACHE"
# Skip/fail messages start with this; the terminal summary finds them by it.
UNAVAILABLE = "test data unavailable"
HUB_TIMEOUT = 600.0

DataFile = Callable[[str], Path]


class DataFileError(Exception):
    """A manifest file that cannot be used."""


class ChecksumMismatch(DataFileError):
    """A copy whose bytes are not the manifest's: never used, always reported."""


class DataUnavailable(DataFileError):
    """No copy anywhere. `path` is the file someone must provide (for a derived file, the missing input)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class SourceFailed(Exception):
    """The public source could not give the file: why, for DataUnavailable's message."""


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    sha256: str
    source: dict[str, Any] | None
    why_no_source: str | None


def load_manifest(path: Path = MANIFEST) -> dict[str, Entry]:
    files = json.loads(path.read_text(encoding="utf-8"))["files"]
    return {
        f["path"]: Entry(f["path"], f["size"], f["sha256"], f["source"], f.get("why_no_source"))
        for f in files
    }


def reference_scores(dataset: str) -> dict[str, Any]:
    return json.loads((REFERENCE_DIR / dataset / "reference-scores.json").read_text(encoding="utf-8"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


class DataLocator:
    """Finds, verifies, fetches and derives manifest files; one per session, so checks are done once."""

    def __init__(
        self,
        manifest: dict[str, Entry],
        data_dir: Path,
        cache_dir: Path,
        hub_endpoint: str | None = None,
    ) -> None:
        self.manifest = manifest
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.hub_endpoint = hub_endpoint
        self._verified: dict[tuple[Path, int, int], str] = {}
        self._unavailable: dict[str, DataUnavailable] = {}

    @classmethod
    def from_environment(cls) -> DataLocator:
        data = Path(os.environ.get(DATA_ENV) or "../shared/data").expanduser()
        cache = os.environ.get(CACHE_ENV) or Path(
            os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "benchgate", "test-data"
        )
        return cls(load_manifest(), (REPO_ROOT / data).resolve(), Path(cache).expanduser().resolve())

    def locate(self, relpath: str) -> Path:
        entry = self.manifest.get(relpath)
        if entry is None:
            raise DataFileError(f"{relpath} is not in {MANIFEST.relative_to(REPO_ROOT)}")
        if relpath in self._unavailable:
            raise self._unavailable[relpath]
        for place in (self.data_dir, self.cache_dir):
            if (place / relpath).is_file():
                return self._verified_copy(place / relpath, entry, "")
        try:
            return self._produce(entry)
        except SourceFailed as failure:
            where = f"not in {DATA_ENV}={self.data_dir}, not in the cache {self.cache_dir}"
            error = DataUnavailable(relpath, f"{where}; {failure}")
        except DataUnavailable as missing_input:
            error = DataUnavailable(
                missing_input.path, f"{missing_input.reason} (needed to derive {relpath})"
            )
        self._unavailable[relpath] = error
        raise error

    def _verified_copy(self, path: Path, entry: Entry, origin: str) -> Path:
        key = self._key(path)
        if key not in self._verified:
            self._verified[key] = sha256_of(path) if key[1] == entry.size else f"size {key[1]}"
        if self._verified[key] != entry.sha256:
            raise ChecksumMismatch(
                f"{path}{origin} is not the manifest's {entry.path}: {self._verified[key]} instead of sha256 "
                f"{entry.sha256} ({entry.size} bytes); replace or delete it"
            )
        return path

    @staticmethod
    def _key(path: Path) -> tuple[Path, int, int]:
        stat = path.stat()
        return path.resolve(), stat.st_size, stat.st_mtime_ns

    def _produce(self, entry: Entry) -> Path:
        source = entry.source
        if source is None:
            raise SourceFailed(f"no public source to fetch it from: {entry.why_no_source}")
        if source["kind"] == "package":
            return self._verified_copy(package_file(source), entry, f" (package {source['distribution']})")
        target = self.cache_dir / entry.path
        # Unique per process: two sessions may fill the same cache at once.
        scratch = self.cache_dir / ".partial" / f"{os.getpid()}-{entry.path.replace('/', '--')}"
        scratch.mkdir(parents=True, exist_ok=True)
        try:
            if source["kind"] == "hub":
                staging = self._download(source, scratch)
                origin = f" (fetched from hub {source['repo_id']}@{source['revision']})"
            else:
                staging = scratch / target.name
                inputs = [self.locate(relpath) for relpath in source["from"]]
                staging.write_bytes(RECIPES[source["recipe"]](inputs, source))
                origin = f" (derived by {source['recipe']})"
            self._verified_copy(staging, entry, origin)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self._verified[self._key(target)] = entry.sha256
        return target

    def _download(self, source: dict[str, Any], scratch: Path) -> Path:
        """hf_hub_download in a child process: the suite runs with HF_HUB_OFFLINE=1, which huggingface_hub
        reads once at import, and only this fetch may go online."""
        env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
        if self.hub_endpoint:
            env["HF_ENDPOINT"] = self.hub_endpoint
        where = f"hub {env.get('HF_ENDPOINT', 'https://huggingface.co')} {source['repo_id']}"
        where += f"@{source['revision']}"
        program = (
            "import sys; from huggingface_hub import hf_hub_download; r, f, t, v, d = sys.argv[1:]; "
            "print(hf_hub_download(r, f, repo_type=t, revision=v, local_dir=d))"
        )
        args = [source["repo_id"], source["filename"], source["repo_type"], source["revision"], str(scratch)]
        try:
            proc = subprocess.run(
                [sys.executable, "-c", program, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=HUB_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise SourceFailed(f"fetching it from {where} timed out after {HUB_TIMEOUT:.0f} s") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise SourceFailed(f"fetching it from {where} failed: {last}")
        return Path(proc.stdout.strip().splitlines()[-1])


def package_file(source: dict[str, Any]) -> Path:
    """The file as installed with its distribution (the pinned version is a label; the sha256 decides)."""
    try:
        importlib.metadata.version(source["distribution"])
    except importlib.metadata.PackageNotFoundError:
        raise SourceFailed(f"package {source['distribution']} is not installed") from None
    return Path(str(importlib.resources.files(source["module"]).joinpath(source["resource"])))


# Derivations: each rebuilds one manifest file byte for byte from its inputs (the sha256 proves it).


def jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def squad_predictions(inputs: list[Path], source: dict[str, Any]) -> bytes:
    def first_five_words(context: str) -> str:
        return " ".join(re.split(r"(?<=[.!?])\s+", context, maxsplit=1)[0].split()[:5])

    rules: dict[str, Callable[[dict[str, Any], str], str]] = {
        "all_empty": lambda qa, context: "",
        "gold_first_answer": lambda qa, context: "" if qa["is_impossible"] else qa["answers"][0]["text"],
        "context_first5words": lambda qa, context: first_five_words(context),
    }
    rule = rules[source["rule"]]
    dev = json.loads(inputs[0].read_text(encoding="utf-8"))
    predictions = {
        qa["id"]: rule(qa, paragraph["context"])
        for article in dev["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }
    return json.dumps(predictions, indent=0).encode()


def lead3(inputs: list[Path], source: dict[str, Any]) -> bytes:
    ends, closers = {".", "!", "?"}, {"''", "'", "-rrb-", ")", '"'}

    def first_three(article: str) -> str:
        tokens, sentences, current, i = article.split(), [], [], 0
        while i < len(tokens) and len(sentences) < 3:
            current.append(tokens[i])
            if tokens[i] in ends:
                while i + 1 < len(tokens) and tokens[i + 1] in closers:
                    i += 1
                    current.append(tokens[i])
                sentences.append(" ".join(current))
                current = []
            i += 1
        if current and len(sentences) < 3:
            sentences.append(" ".join(current))
        return "\n".join(sentences)

    with inputs[0].open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return jsonl_bytes({"id": row["id"], "lead3": first_three(row["article"])} for row in rows)


BROKEN = "    raise NotImplementedError('deliberately broken sample')\n"


def humaneval_samples(inputs: list[Path], source: dict[str, Any]) -> bytes:
    with gzip.open(inputs[0], "rt", encoding="utf-8") as handle:
        problems = [json.loads(line) for line in handle if line.strip()]
    rows: list[dict[str, Any]] = []
    for problem in problems:
        i = int(problem["task_id"].split("/")[1])
        for j in range(10 if source["mixed"] else 1):
            canonical = not source["mixed"] or (i + j) % 3 == 0
            row: dict[str, Any] = {"task_id": problem["task_id"]}
            if source["mixed"]:
                row.update(sample_index=j, is_canonical=canonical)
            row["completion"] = problem["canonical_solution"] if canonical else BROKEN
            if source["with_results"]:
                row.update(
                    result="passed" if canonical else "failed: deliberately broken sample", passed=canonical
                )
            rows.append(row)
    return jsonl_bytes(rows)


RECIPES: dict[str, Callable[[list[Path], dict[str, Any]], bytes]] = {
    "squad_predictions": squad_predictions,
    "lead3": lead3,
    "humaneval_samples": humaneval_samples,
}


def unavailable_summary(reports: Iterable[pytest.TestReport]) -> list[str]:
    """The 'could not run' block: tests skipped (or, in CI, failed) for missing data, counted per file."""
    per_file: Counter[str] = Counter()
    reasons: dict[str, str] = {}
    for report in reports:
        text = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longreprtext
        found = re.search(rf"{UNAVAILABLE}: ([^:]+): (.*)", text)
        if found:
            per_file[found[1]] += 1
            reasons[found[1]] = re.sub(r" \(needed to derive [^)]*\)$", "", found[2].splitlines()[0])
    if not per_file:
        return []
    lines = [
        f"could not run: {count_tests(sum(per_file.values()))}, because their full-size data was not found "
        f"(set {DATA_ENV} to a directory holding it; the manifest is {MANIFEST.relative_to(REPO_ROOT)}):"
    ]
    lines += [f"  {path} ({count_tests(count)}): {reasons[path]}" for path, count in per_file.most_common()]
    return lines


def count_tests(count: int) -> str:
    return f"{count} test{'' if count == 1 else 's'}"
