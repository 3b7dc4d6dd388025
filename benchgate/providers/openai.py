"""OpenAI's API (or an Azure-style gateway via base_url): the chat completions wire with a required key."""

from __future__ import annotations

from typing import Any

from benchgate.providers.http import Outcome
from benchgate.providers.openai_compatible import OpenAICompatibleProvider


class OpenAIProvider(OpenAICompatibleProvider):
    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    needs_key = True

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        if self.spec.organization:
            headers["openai-organization"] = self.spec.organization
        if self.spec.project:
            headers["openai-project"] = self.spec.project
        return headers

    def classify(self, status: int, error: dict[str, Any]) -> Outcome:
        # A 429 for an exhausted quota or billing limit will not clear by waiting.
        if status == 429 and error.get("code") == "insufficient_quota":
            return "config"
        return super().classify(status, error)
