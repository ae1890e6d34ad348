"""One cancel path: the process's cancel watcher serves a running execution and a running chat
reply alike, and a cancel another process handled (only the flags in the database) stops both.
"""

import threading
import time

import pytest

from chat import replies
from chat import services as chat_services
from chat.models import Message
from chat.replies import ReplyFlags
from integrations.cancellation import watcher
from tests.fakes.base import Behaviour
from tests.workflows.conftest import build_graph, runs_by_key
from workflows.engine import execution_run
from workflows.lease import RunFlags, run_flags
from workflows.models import Execution
from workflows.services import execution_create

pytestmark = pytest.mark.django_db(transaction=True)

LONG_REPLY = " ".join(f"w{i}" for i in range(400))


def test_one_watcher_stops_a_run_and_a_reply_from_their_flags(
    user, sleep_node, fake_ollama, settings, monkeypatch
):
    settings.CANCEL_POLL_SECONDS = 0.1
    settings.OLLAMA_BASE_URL = fake_ollama.url
    settings.HTTP_MAX_RETRIES = 0
    readers = {"run": set(), "reply": set()}

    def recording(kind, read):
        def wrapper(self, keys):
            readers[kind].add(threading.current_thread())
            return read(self, keys)

        return wrapper

    monkeypatch.setattr(RunFlags, "read", recording("run", RunFlags.read))
    monkeypatch.setattr(ReplyFlags, "read", recording("reply", ReplyFlags.read))

    # Given a run with a slow node and a reply streaming, each in its own thread.
    graph = build_graph(user, {"slow": ("test_sleep", {"seconds": 20})})
    execution = execution_create(user=user, graph=graph, inputs={}, dispatch=False)
    conversation = chat_services.conversation_create(
        owner=user, provider="ollama", model="llama3.2"
    )
    turn = chat_services.message_begin(user=user, conversation_id=conversation.pk, content="hi")
    reply_id = turn.assistant_message.pk
    fake_ollama.enqueue(Behaviour(reply=LONG_REPLY, token_interval=0.05))
    frames, outcome = [], {}
    threads = [
        threading.Thread(target=lambda: outcome.setdefault("run", execution_run(execution.id))),
        threading.Thread(
            target=lambda: outcome.setdefault(
                "reply", replies.reply_run_in_thread(turn=turn, emit=frames.append)
            )
        ),
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while not (readers["run"] and readers["reply"] and frames):
        assert time.monotonic() < deadline, "the watcher never read both flags"
        time.sleep(0.02)

    # When another process cancels both: all it leaves is the flags.
    Execution.objects.filter(pk=execution.pk).update(cancel_requested=True)
    Message.objects.filter(pk=reply_id).update(cancel_requested=True)
    started = time.monotonic()
    for thread in threads:
        thread.join(5)

    # Then both stop within two poll intervals (plus the machine's slack), each stored
    # cancelled, and every flag read came from one thread: neither the run's nor the reply's.
    assert time.monotonic() - started < 1.5
    assert outcome["run"] == "cancelled"
    assert runs_by_key(graph, Execution.objects.get(pk=execution.pk))["slow"].status == (
        "cancelled"
    )
    assert outcome["reply"].status == Message.Status.CANCELLED
    assert outcome["reply"].content == "".join(
        f["text"] for f in frames if f["type"] == "chat.token"
    )
    assert readers["run"] == readers["reply"]
    assert len(readers["run"]) == 1
    assert readers["run"].isdisjoint(threads)
    assert (run_flags, execution.pk) not in watcher.watching()
    assert (replies.reply_flags, reply_id) not in watcher.watching()
