"""OpenAI chat completions wire (vLLM, Ollama, TGI, llama.cpp, gateways): POST {base_url}/chat/completions."""

from __future__ import annotations

from typing import Any

from benchgate.providers.base import Completion
from benchgate.providers.http import HttpProvider
from benchgate.spec.example import Example


class OpenAICompatibleProvider(HttpProvider):
    """Any server speaking OpenAI's chat completions; the key is optional (local servers have none)."""

    name = "openai-compatible"
    needs_key = False
    reserved_params = frozenset({"model", "messages", "stream"})

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def build_request(self, example: Example) -> tuple[str, dict[str, Any]]:
        body = {"model": self.spec.model_name, "messages": example.messages, **self.spec.params}
        return f"{self.base_url}/chat/completions", body

    def parse(self, data: Any) -> Completion:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
        )
