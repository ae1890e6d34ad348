"""ASGI entry point, loaded by Daphne.

The Django app is built first (it sets up the app registry), then the WebSocket stack.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas.settings")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application does first

# Django's ASGI handler, serving a request's sync work in one reused thread (canvas/handlers.py).
from canvas.handlers import CanvasASGIHandler  # noqa: E402

django_asgi_app = CanvasASGIHandler()

# Daphne runs no system checks: refuse to serve with a CRYPTOGRAPHY_KEY that cannot read the
# stored API keys, rather than fail later on a user's run (integrations/checks.py).
from integrations.checks import verify_encryption_key  # noqa: E402

verify_encryption_key()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from canvas.consumers import CanvasConsumer  # noqa: E402
from canvas.origin import BrowserOriginValidator  # noqa: E402
from canvas.socket_sessions import SocketAuthMiddlewareStack  # noqa: E402
from workflows.recovery import background_start  # noqa: E402

websocket_urlpatterns = [path("ws/", CanvasConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Session auth for browsers (Origin checked), ?token= for everyone: see canvas/origin.py.
        "websocket": BrowserOriginValidator(
            SocketAuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

# Daphne runs no lifespan events: with the inline executor the server process starts the
# recovery sweep here, at start and then periodically (workflows/recovery.py); with celery the
# workers run it (canvas/celery.py).
background_start()
