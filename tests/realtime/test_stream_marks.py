"""What an execution's stored events do to its text streams (``ExecutionTopic.stream_mark``):
only nodes of a type that streams text (the LLM) start and end streams."""

import pytest

from canvas.core import events, realtime
from canvas.core.realtime import StreamMark


def mark(event: str, **data):
    topic = realtime.get_topic(events.EXECUTION)
    return topic.stream_mark({"event": event, "data": {"node": "n1", **data}})


@pytest.mark.parametrize("event", [events.NODE_STARTED, events.NODE_RETRYING])
def test_an_llm_node_starting_starts_its_stream(event):
    assert mark(event, type="llm", attempt=2) == StreamMark("n1", started=True, attempt=2)


def test_an_llm_node_completing_ends_its_stream_with_its_text():
    completed = mark(events.NODE_COMPLETED, type="llm", outputs={"text": "Blue."})

    assert completed == StreamMark("n1", final_text="Blue.")


@pytest.mark.parametrize("event", [events.NODE_FAILED, events.NODE_SKIPPED, events.NODE_CACHED])
def test_an_llm_node_ending_otherwise_ends_its_stream(event):
    assert mark(event, type="llm", outputs={"text": "Blue."}) == StreamMark("n1")


@pytest.mark.parametrize("node_type", ["template", "input", "output", "http", "unknown-type"])
@pytest.mark.parametrize(
    "event", [events.NODE_STARTED, events.NODE_RETRYING, events.NODE_COMPLETED, events.NODE_FAILED]
)
def test_a_node_of_a_type_that_never_streams_has_no_stream(node_type, event):
    assert mark(event, type=node_type, outputs={"text": "x"}) is None


def test_a_node_event_without_its_type_keeps_its_marks():
    assert mark(events.NODE_STARTED) == StreamMark("n1", started=True)
    assert mark(events.NODE_COMPLETED, outputs={"text": "x"}) == StreamMark("n1")


@pytest.mark.parametrize("event", sorted(events.EXECUTION_FINAL_EVENTS))
def test_the_run_ending_ends_every_stream(event):
    topic = realtime.get_topic(events.EXECUTION)

    assert topic.stream_mark({"event": event, "data": {}}) == StreamMark(None)


def test_other_events_do_nothing_to_the_streams():
    assert mark(events.EXECUTION_STARTED) is None
