"""The HTTP face of the chat service (FastAPI): the endpoints, the OpenAI-compatible ones, the chat page,
the API key and the body-size limit. Each handler validates, calls `ChatService` / `Engine`, and shapes
the answer; what happens to a conversation is decided there, not here."""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from hominem_pipeline.serving import models as api
from hominem_pipeline.serving.engine import Engine, ServingError
from hominem_pipeline.serving.service import ChatService, Conflict, Exchange, Turn, UnknownId

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
MODEL_ID = "hominem"
# Module level: FastAPI resolves the (postponed) annotation against this module's globals.
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, whether announced by Content-Length or not."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(send)
        seen, too_large, started = 0, False, False

        async def limited() -> dict:
            nonlocal seen, too_large
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                too_large = True
                raise _TooLarge
            return message

        async def guarded_send(message: dict) -> None:
            # The framework may catch _TooLarge while parsing and answer 400 itself: that answer is
            # dropped, and the 413 below is sent instead.
            nonlocal started
            if too_large:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except _TooLarge:
            pass
        if too_large and not started:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body over the limit of {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _generate_response(x: Exchange) -> api.GenerateResponse:
    s = x.reply.serving
    return api.GenerateResponse(
        text=x.reply.text,
        message_id=x.message_id,
        user_message_id=x.user_message_id,
        conversation_id=x.conversation_id,
        draft_index=x.draft_index,
        **s.versions(),
        reward=x.reward,
        finish_reason=x.reply.finish_reason,
        prompt_tokens=x.reply.prompt_tokens,
        completion_tokens=x.reply.completion_tokens,
        latency_s=round(x.reply.latency_s, 4),
    )


def create_app(service: ChatService, api_key: str | None, require_key: bool) -> FastAPI:
    """`require_key`: every API endpoint needs the bearer token (off loopback). /admin/* always does."""
    engine: Engine = service.engine
    app = FastAPI(
        title="hominem",
        version="1",
        description="Chat, labels and rewards for a local model that "
        "learns from them. Every exchange and label is appended to the event log.",
    )

    def _check(creds: HTTPAuthorizationCredentials | None) -> None:
        if api_key is None:
            raise HTTPException(
                403,
                "admin endpoints need an API key: set the variable named by "
                "server.api_key_env in config/serving.toml",
            )
        if creds is None or not hmac.compare_digest(creds.credentials.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    def user_auth(creds: Credentials) -> None:
        if require_key:
            _check(creds)

    def admin_auth(creds: Credentials) -> None:
        _check(creds)

    @app.exception_handler(UnknownId)
    async def _unknown(_: Request, exc: UnknownId) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=409)

    @app.exception_handler(ServingError)
    async def _unavailable(_: Request, exc: ServingError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    def sampling(body: api.SamplingFields, max_tokens: int | None = None) -> Any:
        try:
            return engine.sampling(max_tokens or body.max_tokens, body.temperature, body.top_p, body.seed)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc

    # -- the chat API ------------------------------------------------------------------------------
    @app.post(
        "/generate",
        response_model=api.GenerateResponse,
        dependencies=[Depends(user_auth)],
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    def generate(body: api.GenerateRequest) -> Any:
        """A reply from the served model, its reward vector, and where it was logged. With `stream`,
        server-sent events: `{"delta": text}` pieces, then `{"done": true, "response": GenerateResponse}`."""
        samp = sampling(body)
        messages = [m.model_dump() for m in body.messages] if body.messages else None
        turn = Turn("/generate", body.conversation_id, messages, body.prompt, body.regenerate)
        if not body.stream:
            return _generate_response(service.reply(turn, samp))
        where, pieces, finished = service.stream_reply(turn, samp)

        def events() -> Iterator[str]:
            yield _sse({"conversation_id": where["conversation_id"], "user_message_id": where["parent_id"]})
            for piece in pieces:
                yield _sse({"delta": piece})
            yield _sse({"done": True, "response": _generate_response(finished[0]).model_dump(mode="json")})

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/reward", response_model=api.RewardResponse, dependencies=[Depends(user_auth)])
    def reward(body: api.RewardRequest) -> api.RewardResponse:
        """Score one prompt with one or more responses (one batch through the reward model)."""
        s = engine.serving
        outputs = engine.score(s, body.prompt, body.responses)
        if outputs is None:
            raise HTTPException(
                503, "no reward model is served (none accepted yet, or the profile says none)"
            )
        return api.RewardResponse(reward_model_version=s.wanted.reward_model_version or "", outputs=outputs)

    @app.post("/feedback", response_model=api.FeedbackResponse, dependencies=[Depends(user_auth)])
    def feedback(body: api.FeedbackRequest) -> api.FeedbackResponse:
        """Emoji labels (set or withdrawn), a chosen/rejected choice, a correction: each one event."""
        events = service.feedback(
            body.message_id,
            body.labels,
            body.remove_labels,
            body.chosen_message_id,
            body.rejected_message_id,
            body.correction,
        )
        labels = sorted(service.index.labels.get(body.message_id or "", set()))
        return api.FeedbackResponse(event_ids=[e.event_id for e in events], labels=labels)

    @app.get(
        "/conversations", response_model=list[api.ConversationSummary], dependencies=[Depends(user_auth)]
    )
    def conversations() -> list[api.ConversationSummary]:
        return [
            api.ConversationSummary(
                conversation_id=c.conversation_id,
                title=c.title,
                updated_at=c.updated_at.isoformat() if c.updated_at else None,
                messages=len(c.messages),
            )
            for c in service.conversation_list()
        ]

    @app.get(
        "/conversations/{conversation_id}",
        response_model=api.ConversationView,
        dependencies=[Depends(user_auth)],
    )
    def conversation(conversation_id: str) -> api.ConversationView:
        conv = service.conversation(conversation_id)
        chosen = {c.chosen_message_id for c in conv.choices}
        rejected = {c.rejected_message_id for c in conv.choices}
        return api.ConversationView(
            conversation_id=conv.conversation_id,
            title=conv.title,
            messages=[
                api.MessageView(
                    message_id=m.event_id,
                    role=m.role,
                    content=m.content,
                    seq=m.seq,
                    parent_id=m.parent_id,
                    draft_index=m.draft_index,
                    labels=sorted(service.index.labels.get(m.event_id, set())),
                    chosen=True if m.event_id in chosen else False if m.event_id in rejected else None,
                    metadata=m.metadata,
                )
                for m in conv.messages
            ],
        )

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Versions loaded, uptime, the last swap and its outcome."""
        return engine.health()

    # -- OpenAI-compatible -------------------------------------------------------------------------
    @app.get("/v1/models", response_model=api.ModelList, dependencies=[Depends(user_auth)])
    def models() -> api.ModelList:
        return api.ModelList(data=[api.ModelCard(id=MODEL_ID, created=int(engine.started_at))])

    @app.post(
        "/v1/chat/completions",
        response_model=api.ChatCompletion,
        dependencies=[Depends(user_auth)],
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    def chat_completions(body: api.ChatCompletionRequest) -> Any:
        """OpenAI chat completions (streaming included) from the served model; the last user message and
        the reply are logged like any other exchange (`user` names the conversation when given)."""
        if body.messages[-1].role != "user":
            raise HTTPException(422, "messages: the last message must be the user's")
        samp = sampling(body, body.max_completion_tokens)
        turn = Turn("/v1/chat/completions", body.user, [m.model_dump() for m in body.messages])
        created = int(time.time())
        if not body.stream:
            x = service.reply(turn, samp)
            return api.ChatCompletion(
                id=f"chatcmpl-{x.message_id}",
                created=created,
                model=body.model,
                choices=[
                    api.ChatChoice(
                        index=0,
                        message=api.AssistantMessage(content=x.reply.text),
                        finish_reason=x.reply.finish_reason,
                    )
                ],
                usage=api.Usage(
                    prompt_tokens=x.reply.prompt_tokens,
                    completion_tokens=x.reply.completion_tokens,
                    total_tokens=x.reply.prompt_tokens + x.reply.completion_tokens,
                ),
                hominem=_generate_response(x).model_dump(mode="json", exclude={"text"}),
            )
        where, pieces, finished = service.stream_reply(turn, samp)
        chunk_id = f"chatcmpl-{where['parent_id']}"

        def chunk(delta: dict, finish: str | None = None) -> str:
            return _sse(
                {
                    "id": chunk_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
            )

        def events() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            for piece in pieces:
                yield chunk({"content": piece})
            yield chunk({}, finished[0].reply.finish_reason)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- admin -------------------------------------------------------------------------------------
    def _admin(record: Any) -> api.AdminResult:
        return api.AdminResult(
            outcome=record.outcome,
            serving=engine.serving.versions(),
            error=record.error,
            seconds=round(record.seconds, 3),
        )

    @app.post("/admin/reload", response_model=api.AdminResult, dependencies=[Depends(admin_auth)])
    def admin_reload() -> api.AdminResult:
        """Load what the configuration and pointers select now (beside the serving set), check, switch."""
        return _admin(engine.reload("admin reload"))

    @app.post("/admin/rollback", response_model=api.AdminResult, dependencies=[Depends(admin_auth)])
    def admin_rollback() -> api.AdminResult:
        """Serve the previous set again (kept loaded since the last swap)."""
        try:
            return _admin(engine.rollback())
        except ServingError as exc:
            raise HTTPException(409, str(exc)) from exc

    # -- the chat page -----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(BodyLimit, max_bytes=engine.config.server.max_body_bytes)
    return app
