"""Signed webhooks after a gate decision: on_pass promotes, on_fail and on_inconclusive alert.

A receiver must be able to trust that a "promote" call came from this gate and is not a replay, so every
delivery is signed per the Standard Webhooks convention (standardwebhooks.com; receivers have libraries
for it): `webhook-id` (the same across retries, so the receiver can deduplicate on it),
`webhook-timestamp`, and `webhook-signature: v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">`.
The id is signed too, so a captured delivery cannot be replayed under a fresh id. ``verify`` is the
receiver side, documented in docs/gate.md.
"""

from __future__ import annotations

import base64
import binascii
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
from benchgate.run.policy import WebhookTarget, configured_targets
from benchgate.secrets import resolve_secret
from benchgate.spec.gate import GateSpec, Webhook
from benchgate.spec.report import DeliveryResult, GateDecision, Report, Verdict, WebhookEvent

log = logging.getLogger(__name__)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
_EVENTS: dict[Verdict, WebhookEvent] = {
    Verdict.PASS: "on_pass",
    Verdict.FAIL: "on_fail",
    Verdict.INCONCLUSIVE: "on_inconclusive",
}


def signing_key(secret: str | bytes) -> bytes:
    """The HMAC key of a secret: ``whsec_<base64>`` (the Standard Webhooks form, what receivers' libraries
    take) decoded, any other string as its UTF-8 bytes, bytes as they are."""
    if isinstance(secret, bytes):
        return secret
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ConfigurationError("webhook secret: starts with whsec_ but the rest is not base64") from None


def sign(key: bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>`` HMAC-SHA256 over ``"{id}.{timestamp}." + body``: id and timestamp are signed so
    neither can be swapped to replay an old delivery."""
    digest = hmac.new(key, f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """True when ``body`` was signed with ``secret`` under its ``webhook-id`` less than
    ``tolerance_seconds`` ago (either way).

    ``headers`` may use any capitalisation; ``webhook-signature`` may hold several space-separated
    signatures (a receiver rotating its secret), any of which may match. Comparisons are constant-time
    so a signature cannot be guessed byte by byte from response times.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    delivery_id = lowered.get(ID_HEADER, "")
    try:
        timestamp = int(lowered.get(TIMESTAMP_HEADER, ""))
    except ValueError:
        return False
    current = time.time() if now is None else now
    if not delivery_id or abs(current - timestamp) > tolerance_seconds:
        return False
    expected = sign(signing_key(secret), delivery_id, timestamp, body).encode()
    matched = False
    for candidate in lowered.get(SIGNATURE_HEADER, "").split(" "):
        matched |= hmac.compare_digest(expected, candidate.encode())
    return matched


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
    targets: Mapping[str, WebhookTarget] | None = None,
    backoff_seconds: float = 1.0,
    max_backoff_seconds: float = 30.0,
) -> list[DeliveryResult]:
    """POST the decision to the hooks of its outcome: on_pass only for a passed gate, never otherwise.

    One delivery per hook, never raising: a hook that cannot be reached is recorded (and, if required
    for a pass, turned into a non-zero exit by ``GateDecision.exit_code``). A hook naming a target is
    sent where `targets` (default: the policy file's webhooks) says, signed with its secret.
    """
    event = _EVENTS[decision.decision]
    hooks: list[Webhook] = getattr(spec, event)
    if targets is None and any(hook.target for hook in hooks):
        targets = configured_targets()
    body = json.dumps(payload(decision, report), allow_nan=False, separators=(",", ":")).encode()
    with httpx.Client(follow_redirects=False) as client:
        return [
            _deliver(client, hook, targets or {}, event, body, backoff_seconds, max_backoff_seconds)
            for hook in hooks
        ]


def _deliver(
    client: httpx.Client,
    hook: Webhook,
    targets: Mapping[str, WebhookTarget],
    event: WebhookEvent,
    body: bytes,
    backoff: float,
    max_backoff: float,
) -> DeliveryResult:
    # A target's URL stays on the server: gate.json (which API callers read) names only the target.
    result = DeliveryResult(
        url=f"target:{hook.target}" if hook.target else _redacted(str(hook.url)),
        delivery_id=f"msg_{uuid.uuid4().hex}",
        status=None,
        attempts=0,
        ok=False,
        required=hook.required,
        event=event,
    )
    target = targets.get(hook.target) if hook.target else None
    if hook.target and target is None:
        result.error = f"no webhook target {hook.target!r} in the policy (BENCHGATE_POLICY)"
        return result
    url = str(target.url if target else hook.url)
    try:
        key = _signing_key(target or hook, result.url)
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
            ID_HEADER: result.delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if key is not None:
            headers[SIGNATURE_HEADER] = sign(key, result.delivery_id, timestamp, body)
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


def _signing_key(hook: Webhook | WebhookTarget, where: str) -> bytes | None:
    """The signing key by reference; errors name the reference, never the value."""
    value = resolve_secret(
        "webhook secret", hook.secret_env, hook.secret_block, ("secret_env", "secret_block")
    )
    if value is None:
        log.warning("webhook %s has no secret: sending it unsigned", where)
        return None
    return signing_key(value)


def _redacted(url: str) -> str:
    """Hook URLs may embed tokens (query strings, user:password@): gate.json keeps only where it went."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
