"""Anthropic's Messages API: POST {base_url}/v1/messages with x-api-key and anthropic-version."""

from __future__ import annotations

from typing import Any

from benchgate.providers.base import Completion
from benchgate.providers.http import HttpProvider
from benchgate.spec.example import Example

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # the API requires max_tokens; OpenAI-style requests often omit it


class AnthropicProvider(HttpProvider):
    name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    reserved_params = frozenset({"model", "messages", "system", "stream"})

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key or "", "anthropic-version": API_VERSION}

    def max_output_tokens(self) -> int:
        value = self.spec.params.get("max_tokens", DEFAULT_MAX_TOKENS)
        return value if isinstance(value, int) else DEFAULT_MAX_TOKENS

    def build_request(self, example: Example) -> tuple[str, dict[str, Any]]:
        system = "\n\n".join(m["content"] for m in example.messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": self.spec.model_name,
            "messages": [m for m in example.messages if m["role"] != "system"],
            "max_tokens": DEFAULT_MAX_TOKENS,
        }
        if system:
            body["system"] = system
        for key, value in self.spec.params.items():
            if key == "stop":  # OpenAI's name; Anthropic wants a list under stop_sequences
                body["stop_sequences"] = [value] if isinstance(value, str) else value
            else:  # temperature, top_p, top_k, max_tokens and Anthropic's own keys pass through
                body[key] = value
        return f"{self.base_url}/v1/messages", body

    def parse(self, data: Any) -> Completion:
        usage = data.get("usage") or {}
        return Completion(
            text="".join(block["text"] for block in data["content"] if block.get("type") == "text"),
            finish_reason=data.get("stop_reason"),
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
        )
