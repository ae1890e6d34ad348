"""A reply whose process died ends ``failed`` (``interrupted``) so the user can regenerate;
a live reply keeps its heartbeat fresh."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from canvas.core.events import conversation_topic
from canvas.core.exceptions import ApplicationError
from canvas.core.publisher import listen
from canvas.core.sweeps import sweeps_run
from chat import replies, services
from chat.models import Message
from integrations.cancellation import Cancellation, watcher

pytestmark = pytest.mark.django_db(transaction=True)


def streaming_reply(user, conversation, *, heartbeat_age: float):
    turn = services.message_begin(user=user, conversation_id=conversation.pk, content="hi")
    Message.objects.filter(pk=turn.assistant_message.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age)
    )
    return turn


def test_a_reply_whose_heartbeat_went_stale_ends_interrupted_and_can_be_regenerated(
    user, conversation, ollama, settings
):
    settings.WORKFLOW_STALE_AFTER = 10
    dead = streaming_reply(user, conversation, heartbeat_age=11)
    alive = streaming_reply(user, conversation, heartbeat_age=1)
    # One reply is fresh enough to be alive: regenerating is refused.
    with pytest.raises(ApplicationError, match="still being written"):
        services.reply_begin(user=user, conversation_id=conversation.pk)

    frames = []
    with listen(conversation_topic(conversation.pk), frames.append):
        sweeps_run()  # what every server process runs periodically
    assert Message.objects.get(pk=alive.assistant_message.pk).status == "streaming"
    Message.objects.filter(pk=alive.assistant_message.pk).delete()

    dead_reply = Message.objects.get(pk=dead.assistant_message.pk)
    assert dead_reply.status == Message.Status.FAILED
    assert dead_reply.error["code"] == "interrupted"
    assert [f["frame"]["type"] for f in frames] == ["chat.done"]
    assert frames[0]["frame"]["message"]["error"]["code"] == "interrupted"

    turn = services.reply_begin(user=user, conversation_id=conversation.pk)
    assert replies.reply_run(turn=turn, emit=lambda frame: None).status == "complete"


def test_regenerate_ends_a_dead_reply_itself(user, conversation, ollama, settings):
    settings.WORKFLOW_STALE_AFTER = 10
    streaming_reply(user, conversation, heartbeat_age=60)
    turn = services.reply_begin(user=user, conversation_id=conversation.pk)
    assert turn.assistant_message.status == Message.Status.STREAMING


def test_the_process_streaming_a_reply_keeps_its_heartbeat_fresh(user, conversation, settings):
    settings.WORKFLOW_HEARTBEAT_INTERVAL = 0.1
    settings.CANCEL_POLL_SECONDS = 0.05
    turn = streaming_reply(user, conversation, heartbeat_age=60)
    message_id = turn.assistant_message.pk
    cancellation = Cancellation()
    watcher.watch(replies.reply_flags, message_id, cancellation)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            beat = Message.objects.get(pk=message_id).heartbeat_at
            if timezone.now() - beat < timedelta(seconds=5):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the heartbeat was not written")
    finally:
        watcher.unwatch(replies.reply_flags, message_id, cancellation)
    assert services.replies_interrupt_stale() == []
