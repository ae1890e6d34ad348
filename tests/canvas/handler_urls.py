"""Views for tests/canvas/test_handlers.py: each records the thread it ran on."""

import threading

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

seen: list[tuple[str, int]] = []
together = threading.Barrier(2, timeout=5)


def where(request):
    seen.append(("view", threading.get_ident()))
    return JsonResponse({"thread": threading.get_ident()})


def both(request):
    # Returns only once two requests are in their views at the same time.
    together.wait()
    return HttpResponse("both")


def stream(request):
    def chunks():
        for part in (b"one ", b"two ", b"three"):
            seen.append(("chunk", threading.get_ident()))
            yield part

    return StreamingHttpResponse(chunks())


urlpatterns = [
    path("where/", where),
    path("both/", both),
    path("stream/", stream),
]
