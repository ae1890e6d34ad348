"""``manage.py export_graph ID > file.json``: a graph as the API's document."""

import json
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from graphs.models import Graph
from graphs.selectors import graph_document


class Command(BaseCommand):
    help = "Print a graph as JSON (the document format of the API)."

    def add_arguments(self, parser):
        parser.add_argument("graph_id", help="The graph's id (UUID).")

    def handle(self, *args, graph_id, **options):
        try:
            graph = Graph.objects.get(pk=uuid.UUID(graph_id))
        except (ValueError, Graph.DoesNotExist):
            raise CommandError(f"No graph with id {graph_id!r}.") from None
        document = graph_document(graph=graph)
        self.stdout.write(json.dumps(document, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False))
