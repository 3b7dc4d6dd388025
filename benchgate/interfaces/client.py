"""Client of the HTTP API: submit a request, wait for its report, exit as `benchgate run` would."""

from __future__ import annotations

import time
from typing import Any

import httpx

from benchgate.errors import (
    EXIT_INCONCLUSIVE,
    BenchgateError,
    ConfigurationError,
    RequestError,
)

FINAL = ("completed", "failed")


class ApiUnavailable(BenchgateError):
    """The API could not be reached or failed on its side: nothing is known about the models."""

    exit_code = EXIT_INCONCLUSIVE


class ApiClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ApiUnavailable(f"cannot reach the benchgate API at {self.http.base_url}: {error}") from None
        if response.status_code == 401:
            raise ConfigurationError(
                "the API refused the token (set BENCHGATE_API_TOKEN to the server's token)"
            )
        if response.status_code == 422:
            body = response.json()
            raise RequestError(body.get("problems") or [str(body.get("detail"))], "API")
        if response.status_code >= 400:
            raise ApiUnavailable(f"API answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def submit(self, request: dict[str, Any]) -> str:
        return self._call("POST", "/v1/benchmarks", json=request)["benchmarkId"]

    def report(self, benchmark_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/benchmarks/{benchmark_id}")

    def wait(self, benchmark_id: str, timeout: float = 3600.0, poll: float = 1.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            report = self.report(benchmark_id)
            if report["status"] in FINAL:
                return report
            if time.monotonic() > deadline:
                raise ApiUnavailable(f"{benchmark_id} still {report['status']} after {timeout:.0f} s")
            time.sleep(poll)
