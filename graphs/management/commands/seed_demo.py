"""``manage.py seed_demo [--if-empty]``: a demo user and a demo graph, on an empty database.

``make run`` calls it with ``--if-empty`` on every start: it seeds once and then says so and
does nothing.
"""

import os
import secrets
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from graphs.services import graph_create

DEMO_USERNAME = "demo"


def demo_document() -> dict:
    """Input → template → LLM (Ollama) → output: a haiku about a topic."""
    ids = {name: str(uuid.uuid4()) for name in ("topic", "prompt", "llm", "haiku")}
    nodes = [
        {
            "id": ids["topic"],
            "type": "input",
            "label": "Topic",
            "position": {"x": 0, "y": 0},
            "config": {"name": "topic", "default": "autumn rain"},
        },
        {
            "id": ids["prompt"],
            "type": "template",
            "label": "Prompt",
            "position": {"x": 260, "y": 0},
            "config": {"template": "Write a haiku about {topic}. Answer with the haiku only."},
        },
        {
            "id": ids["llm"],
            "type": "llm",
            "label": "Model",
            "position": {"x": 520, "y": 0},
            "config": {"provider": "ollama", "model": "llama3.2:1b", "temperature": 0.7},
        },
        {
            "id": ids["haiku"],
            "type": "output",
            "label": "Haiku",
            "position": {"x": 780, "y": 0},
            "config": {"name": "haiku"},
        },
    ]
    edges = [
        {
            "source": ids["topic"],
            "source_port": "value",
            "target": ids["prompt"],
            "target_port": "topic",
        },
        {
            "source": ids["prompt"],
            "source_port": "text",
            "target": ids["llm"],
            "target_port": "prompt",
        },
        {
            "source": ids["llm"],
            "source_port": "text",
            "target": ids["haiku"],
            "target_port": "value",
        },
    ]
    return {
        "name": "Demo: haiku",
        "description": "A haiku about a topic, by a local model.",
        "nodes": nodes,
        "edges": edges,
    }


class Command(BaseCommand):
    help = "Create a demo user and a demo graph on an empty database; print how to log in."

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing (successfully) when the database already has users.",
        )
        parser.add_argument(
            "--password",
            default=os.environ.get("DEMO_PASSWORD"),
            help="The demo user's password (default: $DEMO_PASSWORD, else a random one).",
        )
        parser.add_argument(
            "--host", default="127.0.0.1", help="The address the server listens on (for the URL)."
        )
        parser.add_argument(
            "--port", type=int, default=8000, help="The port the server listens on (for the URL)."
        )

    def handle(self, *args, if_empty=False, password=None, host="127.0.0.1", port=8000, **options):
        User = get_user_model()
        base_url = f"http://{host}:{port}"
        if User.objects.exists():
            if if_empty:
                lines = ["The database has users already; no demo seeded."]
                if User.objects.filter(username=DEMO_USERNAME).exists():
                    lines.append(
                        f"  Forgot the demo password? Set a new one with "
                        f"`.venv/bin/python manage.py changepassword {DEMO_USERNAME}`."
                    )
                lines.append(f"  Serving at {base_url}/")
                self.stdout.write("\n".join(lines))
                return
            raise CommandError(
                "The database has users already; seed_demo only seeds an empty database "
                "(--if-empty skips quietly)."
            )
        password = password or secrets.token_urlsafe(9)
        with transaction.atomic():
            # A local demo: the admin is part of what it shows.
            user = User.objects.create_superuser(
                username=DEMO_USERNAME, email="demo@example.com", password=password
            )
            token = Token.objects.create(user=user)
            document = demo_document()
            saved = graph_create(
                owner=user,
                name=document["name"],
                description=document["description"],
                nodes=document["nodes"],
                edges=document["edges"],
            )
        self.stdout.write(
            "\n".join(
                [
                    f"Seeded the demo user and the graph {saved.graph.name!r} ({saved.graph.id}).",
                    f"  Log in at {base_url}/accounts/login/ as {DEMO_USERNAME} / {password} "
                    f"(then {base_url}/canvas/; /admin/ and /api-auth/login/ work too)",
                    f"  API: curl -H 'Authorization: Token {token.key}' {base_url}/api/graphs/",
                ]
            )
        )
