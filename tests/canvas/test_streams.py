"""The per-socket bookkeeping of text streams (canvas/core/streams.py), without sockets."""

from canvas.core.streams import Piece, TextStreams

TEXT = "The sky is blue."


def test_live_pieces_pass_and_the_end_sends_nothing_more_when_all_arrived():
    streams = TextStreams()
    streams.started("n", 1)
    assert streams.admit("n", Piece(0, 2, "The sky"), attempt=1, offset=0)
    assert streams.admit("n", Piece(2, 2, " is blue."), attempt=1, offset=7)
    assert streams.end("n", TEXT) is None


def test_the_end_sends_the_missing_rest_then_drops_late_pieces():
    # Given the end event went out from the database while live pieces were still queued
    streams = TextStreams()
    streams.started("n", 1)
    assert streams.admit("n", Piece(0, 2, "The sky"), attempt=1, offset=0)
    # When the end is sent, the rest goes first as one piece
    assert streams.end("n", TEXT) == Piece(index=2, count=1, text=" is blue.")
    # Then the queued live piece is late
    assert not streams.admit("n", Piece(2, 2, " is blue."), attempt=1, offset=7)


def test_a_stream_with_no_piece_yet_sends_its_whole_text_before_its_end():
    streams = TextStreams()
    streams.started("n", 1)
    assert streams.end("n", TEXT) == Piece(index=0, count=1, text=TEXT)


def test_joined_mid_stream_the_rest_starts_where_the_socket_is():
    streams = TextStreams()  # no start seen: subscribed while the node ran
    assert streams.admit("n", Piece(5, 1, " is"), attempt=1, offset=7)
    assert streams.end("n", TEXT) == Piece(index=6, count=1, text=" blue.")


def test_unknown_position_sends_nothing_at_the_end():
    streams = TextStreams()
    assert streams.end("n", TEXT) is None
    assert not streams.admit("n", Piece(0, 1, "The"), attempt=1, offset=0)


def test_a_failed_node_closes_its_stream_without_text():
    streams = TextStreams()
    streams.started("n", 1)
    assert streams.admit("n", Piece(0, 1, "The"), attempt=1, offset=0)
    assert streams.end("n", None) is None
    assert not streams.admit("n", Piece(1, 1, " sky"), attempt=1, offset=3)


def test_a_retry_drops_the_earlier_attempts_pieces():
    streams = TextStreams()
    streams.started("n", 1)
    assert streams.admit("n", Piece(0, 1, "The"), attempt=1, offset=0)
    streams.started("n", 2)  # node.retrying: the text starts over
    assert not streams.admit("n", Piece(1, 1, " sky"), attempt=1, offset=3)
    assert streams.admit("n", Piece(0, 1, "The"), attempt=2, offset=0)
    assert streams.end("n", TEXT) == Piece(index=1, count=1, text=" sky is blue.")


def test_a_start_that_arrives_after_its_pieces_keeps_the_count():
    streams = TextStreams()
    assert streams.admit("n", Piece(0, 1, "The"), attempt=1, offset=0)
    streams.started("n", 1)  # backfilled after its own first piece
    assert streams.end("n", TEXT) == Piece(index=1, count=1, text=" sky is blue.")


def test_a_piece_already_covered_is_dropped():
    streams = TextStreams()
    streams.started("n", 1)
    assert streams.admit("n", Piece(0, 2, "The sky"), attempt=1, offset=0)
    assert not streams.admit("n", Piece(0, 1, "The"), attempt=1, offset=0)


def test_the_runs_end_drops_every_later_piece():
    streams = TextStreams()
    streams.started("n", 1)
    streams.end_all()
    assert not streams.admit("n", Piece(0, 1, "The"), attempt=1, offset=0)
    assert not streams.admit("m", Piece(0, 1, "The"), attempt=1, offset=0)
