"""``manage.py import_graph file.json --owner NAME``: a new graph from an exported document.

Every node and edge gets a new id, so one file can be imported many times. The document is
checked by the same serializer and validation as ``POST /api/graphs/``.
"""

import json
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from canvas.core.exceptions import ApplicationError
from graphs.serializers import GraphInputSerializer, errors_to_map
from graphs.services import graph_import


def _summary(errors: dict) -> str:
    return "; ".join(
        f"{key}: {entry['field'] + ' ' if entry['field'] else ''}{entry['message']}"
        for key, entries in errors.items()
        for entry in entries
    )


class Command(BaseCommand):
    help = "Create a graph from a JSON document (as export_graph writes it), with new ids."

    def add_arguments(self, parser):
        parser.add_argument("path", help="The JSON file ('-' for standard input).")
        parser.add_argument("--owner", required=True, help="Username of the new graph's owner.")
        parser.add_argument("--name", help="Name of the new graph (default: the file's).")

    def handle(self, *args, path, owner, name=None, **options):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: owner})
        except User.DoesNotExist:
            raise CommandError(f"No user named {owner!r}.") from None
        try:
            if path == "-":
                raw = json.load(sys.stdin)
            else:
                with open(path, encoding="utf-8") as handle:
                    raw = json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path} is not valid JSON: {exc}.") from None
        if name is not None:
            raw = {**raw, "name": name} if isinstance(raw, dict) else raw

        serializer = GraphInputSerializer(data=raw)
        if not serializer.is_valid():
            errors = errors_to_map(serializer.errors, raw)
            raise CommandError(f"{path} is not a graph document: {_summary(errors)}")
        data = serializer.validated_data
        document = {
            "name": data["name"],
            "description": data["description"],
            "nodes": data.get("nodes", []),
            "edges": data.get("edges", []),
        }
        try:
            saved = graph_import(owner=user, document=document)
        except ApplicationError as exc:
            raise CommandError(f"{exc.message} {_summary(exc.errors)}") from None
        self.stdout.write(
            f"Imported {saved.graph.name!r} as {saved.graph.id} "
            f"({len(saved.nodes)} nodes, {len(saved.edges)} edges) for {owner}."
        )
