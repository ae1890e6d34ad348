"""Both ways of reading a provider's stream: iterated in the test's thread, and pumped by the
process's reading thread (``integrations.reader``), which is how replies stream."""

import threading

import pytest

from integrations.completions import ChatStream, Usage


@pytest.fixture(params=["iterated", "pumped"])
def read(request):
    """``read(stream, received=None)``: the stream's items, appended to ``received`` as they
    arrive (a test of a failure sees what came before it)."""

    def read(stream: ChatStream, received: list | None = None) -> list:
        items = [] if received is None else received
        if request.param == "iterated":
            for item in stream:
                items.append(item)
            return items
        threads = set()

        def on_item(item):
            threads.add(threading.current_thread().name)
            items.append(item)

        stream.pump(on_item)
        # Not read in this thread by the fallback: the reading thread took the body.
        assert threads == {"stream-reader"}
        return items

    read.mode = request.param
    return read


def text_of(items: list) -> str:
    return "".join(item for item in items if not isinstance(item, Usage))
