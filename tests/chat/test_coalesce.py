"""chat.token frames queued behind each other leave as one frame (chat/realtime.py)."""

import asyncio

from chat.realtime import _DONE, COALESCE_MAX_CHARS, _with_queued_tokens


def token(index, text, message="m"):
    return {"type": "chat.token", "message": message, "index": index, "count": 1, "text": text}


def queue_of(*items):
    queue = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    return queue


def test_queued_tokens_join_the_first_one_in_order():
    queue = queue_of(token(1, " sky"), token(2, " is"), _DONE)
    frame, held = _with_queued_tokens(token(0, "The"), queue)
    assert (frame["index"], frame["count"], frame["text"]) == (0, 3, "The sky is")
    assert held is _DONE


def test_a_frame_that_does_not_follow_is_held_for_next_time():
    done = {"type": "chat.done", "message": {}}
    for following in (token(5, "x"), token(1, "x", message="other"), done):
        frame, held = _with_queued_tokens(token(0, "The"), queue_of(following))
        assert (frame["count"], held) == (1, following)


def test_nothing_queued_sends_the_frame_as_it_is():
    frame, held = _with_queued_tokens(token(0, "The"), queue_of())
    assert (frame, held) == (token(0, "The"), None)


def test_a_joined_frame_stays_bounded():
    big = "x" * (COALESCE_MAX_CHARS - 1)
    frame, held = _with_queued_tokens(token(0, big), queue_of(token(1, "yy")))
    assert frame["text"] == big
    assert held == token(1, "yy")
