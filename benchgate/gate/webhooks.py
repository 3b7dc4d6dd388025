"""Signed webhooks after a gate decision: on_pass promotes, on_fail and on_inconclusive alert.

A receiver must be able to trust that a "promote" call came from this gate and is not a replay, so every
delivery carries an HMAC-SHA256 signature over "<timestamp>.<raw body>" and a delivery id that stays the
same across retries (the receiver can deduplicate on it). ``verify`` is the receiver side, documented in
docs/gate.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from benchgate.errors import ConfigurationError
from benchgate.secrets import resolve_secret
from benchgate.spec.gate import GateSpec, Webhook
from benchgate.spec.report import DeliveryResult, GateDecision, Report, Verdict, WebhookEvent

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Benchgate-Timestamp"
DELIVERY_HEADER = "X-Benchgate-Delivery"
SIGNATURE_HEADER = "X-Benchgate-Signature"
_EVENTS: dict[Verdict, WebhookEvent] = {
    Verdict.PASS: "on_pass",
    Verdict.FAIL: "on_fail",
    Verdict.INCONCLUSIVE: "on_inconclusive",
}


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` HMAC-SHA256 over ``b"<timestamp>." + body``: the timestamp is signed so it cannot be
    swapped to replay an old delivery."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """True when ``body`` was signed with ``secret`` less than ``tolerance_seconds`` ago (either way).

    ``headers`` may use any capitalisation. The comparison is constant-time so the signature cannot be
    guessed byte by byte from response times.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    try:
        timestamp = int(lowered.get(TIMESTAMP_HEADER.lower(), ""))
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def payload(decision: GateDecision, report: Report) -> dict[str, Any]:
    """What a hook receives: the decision, its rules, and the report gated (as report.json has it)."""
    data = decision.to_dict()
    return {
        "benchmarkId": report.benchmark_id,
        "name": report.name,
        "decision": data["decision"],
        "rules": data["rules"],
        "report": report.to_dict(),
    }


def deliver_webhooks(
    decision: GateDecision,
    report: Report,
    spec: GateSpec,
    *,
    backoff_seconds: float = 1.0,
    max_backoff_seconds: float = 30.0,
) -> list[DeliveryResult]:
    """POST the decision to the hooks of its outcome: on_pass only for a passed gate, never otherwise.

    One delivery per hook, never raising: a hook that cannot be reached is recorded (and, if required
    for a pass, turned into a non-zero exit by ``GateDecision.exit_code``).
    """
    event = _EVENTS[decision.decision]
    body = json.dumps(payload(decision, report), allow_nan=False, separators=(",", ":")).encode()
    with httpx.Client(follow_redirects=False) as client:
        return [
            _deliver(client, hook, event, body, backoff_seconds, max_backoff_seconds)
            for hook in getattr(spec, event)
        ]


def _deliver(
    client: httpx.Client,
    hook: Webhook,
    event: WebhookEvent,
    body: bytes,
    backoff: float,
    max_backoff: float,
) -> DeliveryResult:
    url = str(hook.url)
    result = DeliveryResult(
        url=_redacted(url),
        delivery_id=str(uuid.uuid4()),
        status=None,
        attempts=0,
        ok=False,
        required=hook.required,
        event=event,
    )
    try:
        secret = _secret(hook)
    except ConfigurationError as error:
        result.error = str(error)
        return result
    for attempt in range(hook.retries + 1):
        if attempt:
            delay = min(max_backoff, backoff * 2 ** (attempt - 1))
            time.sleep(delay * random.uniform(0.5, 1.0))  # jitter: many gates must not retry in lockstep
        result.attempts = attempt + 1
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "benchgate-webhook",
            TIMESTAMP_HEADER: str(timestamp),
            DELIVERY_HEADER: result.delivery_id,
        }
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        try:
            response = client.post(url, content=body, headers=headers, timeout=hook.timeout)
        except httpx.HTTPError as error:
            result.status, result.error = None, f"{type(error).__name__}: {error}"
            log.warning("webhook %s attempt %d: %s", result.url, result.attempts, result.error)
            continue
        result.status = response.status_code
        if response.is_success:
            result.ok, result.error = True, None
            return result
        result.error = f"HTTP {response.status_code}"
        log.warning("webhook %s attempt %d: %s", result.url, result.attempts, result.error)
        if response.status_code < 500:
            return result  # the receiver rejected the call itself: sending it again cannot help
    return result


def _secret(hook: Webhook) -> bytes | None:
    """The signing secret by reference; errors name the reference, never the value."""
    value = resolve_secret(
        "webhook secret", hook.secret_env, hook.secret_block, ("secret_env", "secret_block")
    )
    if value is None:
        log.warning("webhook %s has no secret: sending it unsigned", _redacted(str(hook.url)))
        return None
    return value.encode()


def _redacted(url: str) -> str:
    """Hook URLs may embed tokens (query strings, user:password@): gate.json keeps only where it went."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
