"""Webhook deliveries to a real HTTP receiver on 127.0.0.1, verified with the documented `verify` (and with
the Standard Webhooks library receivers use, when installed)."""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchgate.gate.webhooks import deliver_webhooks, sign, signing_key, verify
from benchgate.run.policy import WebhookTarget
from benchgate.spec.gate import GateSpec, Webhook
from benchgate.spec.report import GateDecision, Report, RuleVerdict

SECRET = "s3cr3t-hook-key"
REPORT = Report(benchmark_id="bmk-0123456789ab", name="nightly", status="completed")


class Receiver:
    """Records every request and answers with the scripted statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture(autouse=True)
def hook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)


def decision(outcome: str) -> GateDecision:
    verdict = RuleVerdict(
        rule="ft f1-score at least 80",
        model="ft",
        task="question-answering",
        metric="f1-score",
        comparison="at_least",
        verdict=outcome,
        reason="f1-score = 82, at least 80",
    )
    return GateDecision(decision=outcome, rules=[verdict])


def spec(url: str, **hook: object) -> GateSpec:
    def hooks(path: str) -> list[Webhook]:
        return [Webhook(url=f"{url}/{path}", secret_env="HOOK_SECRET", **hook)]

    return GateSpec(on_pass=hooks("promote"), on_fail=hooks("alert"), on_inconclusive=hooks("page"))


def test_delivery_is_signed_and_verifies(receiver: Receiver) -> None:
    [result] = deliver_webhooks(decision("pass"), REPORT, spec(receiver.url), backoff_seconds=0.01)
    assert result.ok and result.status == 200 and result.attempts == 1 and result.event == "on_pass"
    [(path, headers, body)] = receiver.requests
    assert path == "/promote"
    assert verify(SECRET, headers, body)
    assert headers["webhook-id"] == result.delivery_id
    data = json.loads(body)
    assert set(data) == {"benchmarkId", "name", "decision", "rules", "report"}
    assert (data["benchmarkId"], data["decision"], data["rules"][0]["verdict"]) == (
        REPORT.benchmark_id,
        "pass",
        "pass",
    )
    assert SECRET not in body.decode() and SECRET not in json.dumps(result.__dict__)


def test_verify_rejects_tampering_staleness_and_wrong_keys(receiver: Receiver) -> None:
    deliver_webhooks(decision("pass"), REPORT, spec(receiver.url))
    [(_, headers, body)] = receiver.requests
    sent = int(headers["webhook-timestamp"])
    assert not verify(SECRET, headers, body.replace(b'"pass"', b'"fail"'))
    assert not verify("another-secret", headers, body)
    assert not verify(SECRET, headers, body, now=sent + 301)  # stale: a replay
    assert not verify(SECRET, headers, body, now=sent - 301)  # from the future
    assert verify(SECRET, headers, body, now=sent + 299)
    assert verify(SECRET.encode(), {k.upper(): v for k, v in headers.items()}, body)
    replayed = {**headers, "webhook-timestamp": str(sent + 10)}  # a fresh timestamp on an old signature
    assert not verify(SECRET, replayed, body, now=sent + 10)
    assert not verify(SECRET, {**headers, "webhook-id": ""}, body)
    assert not verify(SECRET, {**headers, "webhook-signature": "v1,bm90LWl0"}, body)
    assert not verify(SECRET, {}, body)


def test_a_captured_delivery_replayed_under_a_fresh_id_fails(receiver: Receiver) -> None:
    """A receiver deduplicating on webhook-id would take a fresh id for a new delivery: the id is signed."""
    deliver_webhooks(decision("pass"), REPORT, spec(receiver.url))
    [(_, headers, body)] = receiver.requests
    assert verify(SECRET, headers, body)
    assert not verify(SECRET, {**headers, "webhook-id": "msg_fresh"}, body)


def test_any_of_several_signatures_may_match(receiver: Receiver) -> None:
    """A receiver rotating its secret lists the old and the new signature; one valid one is enough."""
    deliver_webhooks(decision("pass"), REPORT, spec(receiver.url))
    [(_, headers, body)] = receiver.requests
    sent = int(headers["webhook-timestamp"])
    other = sign(b"old-key", headers["webhook-id"], sent, body)
    assert verify(SECRET, {**headers, "webhook-signature": f"{other} {headers['webhook-signature']}"}, body)
    assert not verify(SECRET, {**headers, "webhook-signature": f"{other} v1,AAAA"}, body)


def test_sign_is_standard_webhooks_hmac_over_id_timestamp_body() -> None:
    import base64
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"msg_1.1700000000.{}", hashlib.sha256).digest()
    assert sign(b"k", "msg_1", 1_700_000_000, b"{}") == "v1," + base64.b64encode(expected).decode()


def test_whsec_secrets_are_base64_decoded_others_are_utf8_bytes() -> None:
    assert signing_key("whsec_" + "c2VjcmV0LWtleQ==") == b"secret-key"
    assert signing_key("whsec_c2VjcmV0LWtleQ") == b"secret-key"  # unpadded, as some generators write it
    assert signing_key("plain secret é") == "plain secret é".encode()
    assert signing_key(b"raw") == b"raw"
    with pytest.raises(Exception, match="whsec_ but the rest is not base64") as error:
        signing_key("whsec_not base64!")
    assert "not base64!" not in str(error.value)


def test_the_standard_webhooks_library_verifies_our_deliveries(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    standardwebhooks = pytest.importorskip("standardwebhooks")
    deliver_webhooks(decision("pass"), REPORT, spec(receiver.url))
    whsec = "whsec_" + base64_of(b"a-32-byte-key-for-the-receivers!")
    monkeypatch.setenv("HOOK_SECRET", whsec)
    deliver_webhooks(decision("pass"), REPORT, spec(receiver.url))
    (_, raw_headers, raw_body), (_, headers, body) = receiver.requests
    assert standardwebhooks.Webhook(SECRET.encode()).verify(raw_body, raw_headers)["decision"] == "pass"
    assert standardwebhooks.Webhook(whsec).verify(body, headers)["decision"] == "pass"
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(whsec).verify(body, {**headers, "webhook-id": "msg_fresh"})


def base64_of(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def test_retries_5xx_with_the_same_delivery_id(receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    [result] = deliver_webhooks(decision("fail"), REPORT, spec(receiver.url, retries=3), backoff_seconds=0.01)
    assert result.ok and result.attempts == 3 and result.status == 200
    ids = {headers["webhook-id"] for _, headers, _ in receiver.requests}
    assert ids == {result.delivery_id}
    assert all(verify(SECRET, headers, body) for _, headers, body in receiver.requests)


def test_gives_up_after_the_retries(receiver: Receiver) -> None:
    receiver.statuses = [502] * 10
    [result] = deliver_webhooks(decision("pass"), REPORT, spec(receiver.url, retries=2), backoff_seconds=0.01)
    assert (result.ok, result.attempts, result.status, result.error) == (False, 3, 502, "HTTP 502")


def test_no_retry_on_4xx(receiver: Receiver) -> None:
    receiver.statuses = [400, 200]
    [result] = deliver_webhooks(decision("pass"), REPORT, spec(receiver.url, retries=3), backoff_seconds=0.01)
    assert (result.ok, result.attempts, result.status) == (False, 1, 400)
    assert len(receiver.requests) == 1


def test_timeout_is_per_hook_and_retried(receiver: Receiver) -> None:
    receiver.delay = 0.5
    hooks = spec(receiver.url, retries=1, timeout=0.1)
    [result] = deliver_webhooks(decision("pass"), REPORT, hooks, backoff_seconds=0.01)
    assert not result.ok and result.attempts == 2 and result.status is None
    assert "Timeout" in (result.error or "")


def test_network_error_is_retried_then_recorded() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hooks = spec(f"http://127.0.0.1:{port}", retries=2)
    [result] = deliver_webhooks(decision("pass"), REPORT, hooks, backoff_seconds=0.01)
    assert (result.ok, result.attempts, result.status) == (False, 3, None)
    assert "ConnectError" in (result.error or "")


@pytest.mark.parametrize(
    "outcome,path", [("pass", "/promote"), ("fail", "/alert"), ("inconclusive", "/page")]
)
def test_hooks_follow_the_decision(receiver: Receiver, outcome: str, path: str) -> None:
    [result] = deliver_webhooks(decision(outcome), REPORT, spec(receiver.url))
    assert receiver.paths() == [path] and result.ok
    assert json.loads(receiver.requests[0][2])["decision"] == outcome


def test_failed_gate_never_calls_on_pass(receiver: Receiver) -> None:
    only_promote = GateSpec(on_pass=[Webhook(url=f"{receiver.url}/promote", secret_env="HOOK_SECRET")])
    assert deliver_webhooks(decision("fail"), REPORT, only_promote) == []
    assert deliver_webhooks(decision("inconclusive"), REPORT, only_promote) == []
    assert receiver.requests == []


def test_missing_secret_is_not_sent_and_names_the_variable(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_SECRET")
    [result] = deliver_webhooks(decision("pass"), REPORT, spec(receiver.url))
    assert not result.ok and result.attempts == 0 and "HOOK_SECRET" in (result.error or "")
    assert receiver.requests == []


def test_secret_from_a_prefect_secret_block(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    class Secret:
        @staticmethod
        def load(name: str, _sync: bool = False) -> types.SimpleNamespace:
            assert name == "deploy-hook"
            return types.SimpleNamespace(get=lambda: "block-secret")

    for name in ("prefect", "prefect.blocks"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "prefect.blocks.system", types.SimpleNamespace(Secret=Secret))
    hooks = GateSpec(on_pass=[Webhook(url=f"{receiver.url}/promote", secret_block="deploy-hook")])
    [result] = deliver_webhooks(decision("pass"), REPORT, hooks)
    [(_, headers, body)] = receiver.requests
    assert result.ok and verify("block-secret", headers, body)


def test_secret_stays_out_of_logs_and_results(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses = [500]
    url = f"{receiver.url}/promote?token=url-token"
    hooks = GateSpec(on_pass=[Webhook(url=url, secret_env="HOOK_SECRET", retries=1)])
    with caplog.at_level(logging.DEBUG, logger="benchgate.gate.webhooks"):
        [result] = deliver_webhooks(decision("pass"), REPORT, hooks, backoff_seconds=0.01)
    assert result.ok and result.url == f"{receiver.url}/promote"
    assert SECRET not in caplog.text and "url-token" not in caplog.text


def test_documented_receiver_snippets_verify_a_real_delivery(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "gate.md"
    receiver_code, standalone_code = re.findall(r"```python\n(.*?)```", docs.read_text(), re.S)
    deliver_webhooks(decision("pass"), REPORT, spec(receiver.url))
    [(_, headers, body)] = receiver.requests
    monkeypatch.setenv("DEPLOY_HOOK_SECRET", SECRET)
    documented: dict = {}
    exec(compile(receiver_code, str(docs), "exec"), documented)
    assert documented["handle_benchgate"](headers, body) == 200
    assert documented["handle_benchgate"](headers, body) == 200 and len(documented["handled"]) == 1
    assert documented["handle_benchgate"](headers, body + b" ") == 401
    exec(compile(standalone_code, str(docs), "exec"), documented)
    assert documented["verify_benchgate"](SECRET, headers, body)
    assert not documented["verify_benchgate"](SECRET, headers, body.replace(b"pass", b"fail"))
    assert not documented["verify_benchgate"](SECRET, {**headers, "webhook-id": "msg_fresh"}, body)
    delivery, old = headers["webhook-id"], int(headers["webhook-timestamp"]) - 301
    stale = {
        "webhook-id": delivery,
        "webhook-timestamp": str(old),
        "webhook-signature": sign(SECRET.encode(), delivery, old, body),
    }
    assert not documented["verify_benchgate"](SECRET, stale, body)
    whsec = "whsec_" + base64_of(b"rotated-key")
    monkeypatch.setenv("HOOK_SECRET", whsec)
    deliver_webhooks(decision("pass"), REPORT, spec(receiver.url))
    (_, headers, body) = receiver.requests[-1]
    assert documented["verify_benchgate"](whsec, headers, body)


def test_a_target_is_sent_to_its_configured_url_signed_with_its_secret(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TARGET_SECRET", "target-secret")
    targets = {"deploy": WebhookTarget(url=f"{receiver.url}/deploy", secret_env="TARGET_SECRET")}
    hooks = GateSpec(on_pass=[Webhook(target="deploy"), Webhook(target="elsewhere")])
    [sent, unknown] = deliver_webhooks(decision("pass"), REPORT, hooks, targets=targets)
    [(path, headers, body)] = receiver.requests
    assert path == "/deploy" and verify("target-secret", headers, body) and sent.ok
    assert sent.url == "target:deploy" and receiver.url not in json.dumps(sent.model_dump())
    assert (
        not unknown.ok and unknown.attempts == 0 and "no webhook target 'elsewhere'" in (unknown.error or "")
    )


def test_targets_come_from_the_policy_file(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"webhooks:\n  deploy: {{url: '{receiver.url}/deploy', secret_env: HOOK_SECRET}}\n")
    monkeypatch.setenv("BENCHGATE_POLICY", str(policy))
    [result] = deliver_webhooks(decision("pass"), REPORT, GateSpec(on_pass=[Webhook(target="deploy")]))
    [(_, headers, body)] = receiver.requests
    assert result.ok and verify(SECRET, headers, body)
