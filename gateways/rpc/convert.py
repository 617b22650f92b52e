"""Records and service events to chatservice.v1 messages, and v1 parameters to overrides."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from actors.protocol import WindowInfo
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.service.events import TurnDelta, TurnEvent, TurnFinished, TurnStarted
from gateways.service.params import ChatOverrides
from store.records import ChatParams, ChatRecord, ChatStatus, MessageRecord, MessageStatus, Role

FINISH = {
    "stop": pb.FINISH_REASON_STOP,
    "length": pb.FINISH_REASON_LENGTH,
    "content_filter": pb.FINISH_REASON_CONTENT_FILTER,
}
ROLE = {Role.SYSTEM: pb.ROLE_SYSTEM, Role.USER: pb.ROLE_USER, Role.ASSISTANT: pb.ROLE_ASSISTANT}
STATE = {ChatStatus.ACTIVE: pb.CHAT_STATE_ACTIVE, ChatStatus.ENDED: pb.CHAT_STATE_ENDED}
USAGE_SOURCE = {"server": pb.USAGE_SOURCE_SERVER, "estimate": pb.USAGE_SOURCE_ESTIMATE}
STATUS = {
    MessageStatus.COMPLETE: pb.MESSAGE_STATUS_COMPLETE,
    MessageStatus.INTERRUPTED: pb.MESSAGE_STATUS_INTERRUPTED,
}


def timestamp(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at)  # records hold naive UTC, which is what FromDatetime assumes
    return ts


def window(info: WindowInfo) -> pb.ContextWindow:
    return pb.ContextWindow(
        message_count=info.messages,
        token_count=info.tokens,
        context_tokens=info.context_tokens,
        server_prompt_tokens=info.server_prompt_tokens,
        correction=info.correction,
    )


def parameters(p: ChatParams) -> pb.ChatParameters:
    return pb.ChatParameters(
        model=p.model,
        temperature=p.temperature,
        top_p=p.top_p,
        max_tokens=p.max_tokens,
        stop=list(p.stop),
        presence_penalty=p.presence_penalty,
        frequency_penalty=p.frequency_penalty,
    )


def chat(record: ChatRecord, info: WindowInfo | None = None) -> pb.Chat:
    return pb.Chat(
        chat_id=record.id,
        user_id=record.user_id,
        title=record.title,
        state=STATE[record.status],
        parameters=parameters(record.params),
        window=window(info) if info is not None else None,
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
    )


def message(record: MessageRecord) -> pb.Message:
    return pb.Message(
        chat_id=record.chat_id,
        message_id=record.seq,
        role=ROLE[record.role],
        content=record.content,
        token_count=record.tokens,
        status=STATUS[record.status],
        finish_reason=record.finish_reason or "",
        erased=record.erased,
        create_time=timestamp(record.created_at),
    )


def overrides(p: pb.ChatParameters) -> ChatOverrides:
    """Only the fields the client set; the rest keep the service's defaults."""
    return ChatOverrides(
        model=p.model if p.HasField("model") else None,
        system_prompt=p.system_prompt if p.HasField("system_prompt") else None,
        temperature=p.temperature if p.HasField("temperature") else None,
        top_p=p.top_p if p.HasField("top_p") else None,
        max_tokens=p.max_tokens if p.HasField("max_tokens") else None,
        stop=tuple(p.stop) if p.stop else None,
        presence_penalty=p.presence_penalty if p.HasField("presence_penalty") else None,
        frequency_penalty=p.frequency_penalty if p.HasField("frequency_penalty") else None,
    )


def turn_event(event: TurnEvent) -> pb.TurnEvent:
    if isinstance(event, TurnDelta):
        return pb.TurnEvent(delta=pb.TurnDelta(text=event.text))
    if isinstance(event, TurnStarted):
        started = pb.TurnStarted(
            chat_id=event.chat_id,
            user_message_id=event.user_message_id,
            chat_created=event.created,
            window=window(event.window),
        )
        return pb.TurnEvent(started=started)
    return pb.TurnEvent(finished=finished(event))


def finished(event: TurnFinished) -> pb.TurnFinished:
    usage = pb.TokenUsage(
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        total_tokens=event.prompt_tokens + event.completion_tokens,
        source=USAGE_SOURCE[event.usage_source],
    )
    return pb.TurnFinished(
        assistant_message_id=event.assistant_message_id or 0,
        finish_reason=FINISH.get(event.finish_reason, pb.FINISH_REASON_OTHER),
        usage=usage,
        evicted_messages=event.evicted,
        window=window(event.window),
    )
