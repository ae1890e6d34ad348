"""``manage.py export_graph GRAPH > file.json``: a graph (by id or name) as the API's document."""

import json

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from canvas.core.exceptions import ApplicationError
from graphs.selectors import graph_document, graph_get_by_reference


class Command(BaseCommand):
    help = "Print a graph (by id or name) as JSON (the document format of the API)."

    def add_arguments(self, parser):
        parser.add_argument("graph", help="The graph's id or name.")
        parser.add_argument("--owner", help="Pick the graph by name among this user's graphs.")

    def handle(self, *args, graph, owner=None, **options):
        try:
            found = graph_get_by_reference(reference=graph, owner_username=owner)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        document = graph_document(graph=found)
        self.stdout.write(json.dumps(document, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False))
