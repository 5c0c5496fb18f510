"""A minimal OpenAI-compatible chat client on the standard library, counting tokens from `usage`."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from chalicelib.sim.spec import LLMEndpoint

# Where each provider serves its OpenAI-compatible API when the config leaves base_url empty.
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "qwen": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "zhipuai": "https://open.bigmodel.cn/api/paas/v4",
    "siliconflow": "https://api.siliconflow.cn/v1",
    "volcengine": "https://ark.cn-beijing.volces.com/api/v3",
}
MAX_ERROR_BODY = 300  # enough of an error body to say what went wrong, not enough to flood a log


class LLMError(RuntimeError):
    """An LLM call failed (HTTP status, network, timeout or an unreadable answer)."""


@dataclass(frozen=True)
class Completion:
    text: str
    input_tokens: int
    output_tokens: int


def base_url(endpoint: LLMEndpoint) -> str:
    url = endpoint.base_url or DEFAULT_BASE_URLS.get(endpoint.provider)
    if not url:
        raise LLMError(f"provider {endpoint.provider} needs a base_url")
    return url.rstrip("/")


class ChatClient:
    """One endpoint; thread-safe because it holds no mutable state."""

    def __init__(self, endpoint: LLMEndpoint):
        self.endpoint = endpoint
        self.url = base_url(endpoint) + "/chat/completions"

    def __repr__(self) -> str:  # never show the key, even in a traceback's locals
        return f"ChatClient({self.endpoint.provider}, {self.endpoint.model}, {self.url})"

    def chat(self, messages: list[dict], max_tokens: Optional[int] = None, temperature: float = 0.7) -> Completion:
        body: dict = {"model": self.endpoint.model, "messages": messages, "temperature": temperature}
        if max_tokens:
            body["max_tokens"] = max_tokens
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        where = f"{self.endpoint.provider} {self.endpoint.model} at {self.url}"
        try:
            with urllib.request.urlopen(request, timeout=self.endpoint.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            detail = self._redact(e.read()[:MAX_ERROR_BODY].decode("utf-8", "replace"))
            raise LLMError(f"LLM call to {where} failed: HTTP {e.code} {detail}".strip()) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise LLMError(f"LLM call to {where} failed: {self._redact(str(reason))}") from None
        return self._parse(raw, where)

    def _parse(self, raw: bytes, where: str) -> Completion:
        try:
            data = json.loads(raw)
            text = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
            return Completion(text=str(text or "").strip(), input_tokens=int(usage.get("prompt_tokens") or 0),
                              output_tokens=int(usage.get("completion_tokens") or 0))
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise LLMError(f"LLM call to {where} gave an unreadable answer: {type(e).__name__}") from None

    def _redact(self, text: str) -> str:
        # some providers echo the key they rejected; it must not reach a log
        key = self.endpoint.api_key
        return text.replace(key, "***") if key else text
