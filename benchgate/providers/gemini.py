"""Google's Gemini API: POST {base_url}/v1beta/models/{model}:generateContent with x-goog-api-key.

The key goes in a header, never in the URL (`?key=`), so URLs in messages and logs carry no secret.
Finish reasons are lower-cased ("stop", "max_tokens"); a prompt or answer blocked for safety is a
model outcome, returned as Completion(text="", finish_reason="safety"), not an error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from benchgate.providers.base import Completion
from benchgate.providers.http import HttpProvider, Outcome
from benchgate.spec.example import Example

# OpenAI-style parameter names -> generationConfig names; other keys pass through unchanged.
_GENERATION_CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "max_tokens": "maxOutputTokens",
    "stop": "stopSequences",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_TOP_LEVEL = frozenset({"safetySettings", "tools", "toolConfig", "cachedContent", "labels"})
_SAFETY_REASONS = frozenset({"SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})


class GeminiProvider(HttpProvider):
    name = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    reserved_params = frozenset({"contents", "systemInstruction", "generationConfig"})

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._api_key or ""}

    def max_output_tokens(self) -> int:
        params = self.spec.params
        value = params.get("max_tokens", params.get("maxOutputTokens", 0))
        return value if isinstance(value, int) else 0

    def build_request(self, example: Example) -> tuple[str, dict[str, Any]]:
        system = "\n\n".join(m["content"] for m in example.messages if m["role"] == "system")
        body: dict[str, Any] = {
            "contents": [
                {"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
                for m in example.messages
                if m["role"] != "system"
            ]
        }
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config: dict[str, Any] = {}
        for key, value in self.spec.params.items():
            if key in _TOP_LEVEL:
                body[key] = value
            elif key == "stop":
                config["stopSequences"] = [value] if isinstance(value, str) else value
            else:
                config[_GENERATION_CONFIG.get(key, key)] = value
        if config:
            body["generationConfig"] = config
        model = quote(self.spec.model_name, safe="")  # a name is one path segment: no '/', '?' or '..'
        return f"{self.base_url}/v1beta/models/{model}:generateContent", body

    def parse(self, data: Any) -> Completion:
        usage = data.get("usageMetadata") or {}
        input_tokens = usage.get("promptTokenCount")
        candidates = data.get("candidates") or []
        if not candidates:
            if (data.get("promptFeedback") or {}).get("blockReason"):
                return Completion(text="", finish_reason="safety", input_tokens=input_tokens, output_tokens=0)
            raise KeyError("candidates")
        candidate = candidates[0]
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(part.get("text", "") for part in parts if not part.get("thought"))
        reason = candidate.get("finishReason")
        if reason in _SAFETY_REASONS:
            finish_reason: str | None = "safety"
        else:
            finish_reason = reason.lower() if isinstance(reason, str) else None
        return Completion(
            text=text,
            finish_reason=finish_reason,
            input_tokens=input_tokens,
            output_tokens=usage.get("candidatesTokenCount"),
        )

    def classify(self, status: int, error: dict[str, Any]) -> Outcome:
        # Gemini answers an invalid key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID.
        if status == 400 and any(
            isinstance(detail, dict) and detail.get("reason") == "API_KEY_INVALID"
            for detail in error.get("details") or []
        ):
            return "config"
        return super().classify(status, error)
