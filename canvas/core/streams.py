"""Per socket, per subscription: the text streams (an LLM node's tokens) and what was sent of them.

Tokens are live only and never stored; the events that start and end a stream are stored and
may reach a socket from the database (the replay on subscribe, a backfill) while that stream's
last live tokens are still queued for the socket behind them. So the consumer keeps, for each
stream of a subscription, how much of its text the socket got, and

- sends a live piece only while its stream is open and of the current attempt;
- when it sends a stream's end (from any path), first sends the part of the final text the
  socket has not had yet as one more piece, then closes the stream: its late live pieces are
  dropped.

Pure bookkeeping, no I/O: the consumer (``canvas/consumers.py``) does the sending.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Piece:
    """A token frame's payload: ``count`` tokens from ``index`` on, as ``text``."""

    index: int
    count: int
    text: str


@dataclasses.dataclass(slots=True)
class _Stream:
    attempt: int | None
    # Characters of the stream's text (this attempt) the socket has, counted from its start;
    # None while unknown (joined mid-stream and no piece yet).
    sent_to: int | None = None
    next_index: int = 0
    closed: bool = False


class TextStreams:
    """The streams of one subscription, keyed by stream (a node id)."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._all_closed = False

    def started(self, key: str, attempt: int | None) -> None:
        """A stream (re)starts from its first character: ``node.started``, ``node.retrying``."""
        stream = self._streams.get(key)
        if stream is not None and not stream.closed and stream.attempt == attempt:
            # Pieces of this attempt already went out (its start event reached this socket
            # after them, from a backfill): keep counting from there.
            if stream.sent_to is None:
                stream.sent_to, stream.next_index = 0, 0
            return
        self._streams[key] = _Stream(attempt=attempt, sent_to=0)

    def admit(self, key: str, piece: Piece, *, attempt: int | None, offset: int | None) -> bool:
        """A live piece whose text starts ``offset`` characters into its stream (None: right
        after the previous piece): True when the socket should get it, False when it is late
        (its stream ended, an earlier attempt, text already sent)."""
        if self._all_closed:
            return False
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(attempt=attempt)
        if stream.closed:
            return False
        if attempt is not None and stream.attempt is not None and attempt != stream.attempt:
            if attempt < stream.attempt:
                return False
            # A newer attempt whose start event has not reached this socket yet.
            stream.attempt, stream.sent_to = attempt, None
        if stream.attempt is None:
            stream.attempt = attempt
        if offset is None:
            offset = stream.sent_to
        elif stream.sent_to is not None and offset < stream.sent_to:
            return False
        stream.sent_to = None if offset is None else offset + len(piece.text)
        stream.next_index = piece.index + piece.count
        return True

    def end(self, key: str, final_text: str | None) -> Piece | None:
        """Close a stream. Returns the piece to send before its end event: the rest of
        ``final_text`` the socket has not had, when the socket's position is known."""
        stream = self._streams.get(key)
        if stream is None:
            self._streams[key] = _Stream(attempt=None, closed=True)
            return None
        was_closed, stream.closed = stream.closed, True
        if was_closed or final_text is None or stream.sent_to is None:
            return None
        if len(final_text) <= stream.sent_to:
            return None
        rest = final_text[stream.sent_to :]
        stream.sent_to = len(final_text)
        return Piece(index=stream.next_index, count=1, text=rest)

    def end_all(self) -> None:
        """Nothing more streams on this subscription (the run ended)."""
        self._all_closed = True
