"""A small stand-in for an OpenAI-compatible server, for the faults a real one will not produce on demand: going
away mid-answer, 5xx, 4xx for one job, slowness, a refused key, a reasoning model's thinking. It speaks just enough
of /v1/chat/completions: streamed (SSE) answers of "answer to: <the last user message>", a word per chunk, usage in
the last chunk; or scripted answers, chunk by chunk as given."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.redis_server import free_port


def answer_text(body: dict[str, Any]) -> str:
    """The whole answer the stand-in streams for a request (to the words of a message given as parts)."""
    content = body["messages"][-1]["content"]
    if isinstance(content, list):
        content = " ".join(part["text"] for part in content if part.get("type") == "text")
    return f"answer to: {content}"


@dataclass(frozen=True)
class ScriptedAnswer:
    """An answer streamed as given, one chunk per delta (`{"content": ...}`, `{"reasoning_content": ...}`,
    `{"reasoning": ...}`), then `finish_reason`."""

    deltas: tuple[dict[str, str], ...]
    finish_reason: str = "stop"


class OpenAIStandIn:
    def __init__(self, model: str = "stand-in-model", api_key: str = "") -> None:
        self.model = model
        self.api_key = api_key
        """Requests must carry this key (when set); a refusal quotes the key it got, as careless servers do."""
        self.port = free_port()
        self.chunk_delay_s = 0.0
        self.delay_before_answer_s = 0.0
        self.next_statuses: deque[int] = deque()
        """Answered to the next requests, one each, before anything else is looked at."""
        self.refuse_containing: dict[str, int] = {}
        """A request whose last message contains the key is answered with the status, every time."""
        self.scripted: dict[str, ScriptedAnswer] = {}
        """A request whose last message contains the key gets that answer instead of "answer to: ..."."""
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.chunks_sent = 0
        self.open_streams = 0
        self.most_open_streams = 0
        self._transports: set[asyncio.Transport] = set()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        """Listens (again, after `stop`) on the same port."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Goes away as a crashed server does: stops listening and cuts every answer being streamed."""
        for transport in self._transports:
            transport.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        refusal = self._refusal(request, body)
        self.statuses.append(refusal[0] if refusal else 200)
        if refusal:
            return web.json_response({"error": {"message": refusal[1], "type": "stand_in"}}, status=refusal[0])
        transport = request.transport
        assert transport is not None
        self._transports.add(transport)
        self.open_streams += 1
        self.most_open_streams = max(self.most_open_streams, self.open_streams)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        try:
            await asyncio.sleep(self.delay_before_answer_s)
            await response.prepare(request)
            script = self._script(body)
            for delta in script.deltas:
                await self._send(response, delta)
                self.chunks_sent += 1
                await asyncio.sleep(self.chunk_delay_s)
            tokens = len(script.deltas)
            usage = {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": 7 + tokens}
            await self._send(response, {}, finish_reason=script.finish_reason, usage=usage)
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # cut by `stop`
        finally:
            self.open_streams -= 1
            self._transports.discard(transport)
        return response

    def _script(self, body: dict[str, Any]) -> ScriptedAnswer:
        last = body["messages"][-1]["content"]
        for marker, script in self.scripted.items():
            if marker in last:
                return script
        words = answer_text(body).split(" ")
        return ScriptedAnswer(tuple({"content": word if i == 0 else f" {word}"} for i, word in enumerate(words)))

    def _refusal(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str] | None:
        if self.next_statuses:
            status = self.next_statuses.popleft()
            return status, f"the stand-in was told to answer {status}"
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.api_key and given != self.api_key:
            return 401, f"Incorrect API key provided: {given}"
        if body.get("model") != self.model:
            return 404, f"The model `{body.get('model')}` does not exist."
        last = body["messages"][-1]["content"]
        for marker, status in self.refuse_containing.items():
            if marker in last:
                return status, f"this request cannot be answered ({marker})"
        return None

    async def _send(
        self, response: web.StreamResponse, delta: dict[str, str], finish_reason: str | None = None, **extra: object
    ) -> None:
        chunk = {
            "id": "chatcmpl-stand-in",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
