"""``manage.py run_workflow GRAPH [--input k=v ...] [--json]``: run a graph in the foreground.

Prints each node's start, the tokens as they stream, each finish with its time, then the
outputs and the final status. Exits 0 when the run succeeded, 1 when it failed or was
cancelled; Ctrl-C cancels the run cleanly (the engine interrupts in-flight calls).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from canvas.core import events
from canvas.core.exceptions import ApplicationError
from canvas.core.publisher import listen
from graphs.models import Graph
from graphs.selectors import graph_get_by_reference
from workflows.engine import execution_run
from workflows.models import Execution
from workflows.serializers import ExecutionSerializer
from workflows.services import execution_cancel, execution_create


def parse_input(text: str) -> tuple[str, object]:
    """``k=v``: ``v`` is JSON when it parses as JSON (``n=5``, ``tags=["a"]``), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CommandError(f"--input {text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


class Command(BaseCommand):
    help = "Run a graph (by id or name) in the foreground and print its progress."

    def add_arguments(self, parser):
        parser.add_argument("graph", help="The graph's id or name.")
        parser.add_argument(
            "--input",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="An input (repeatable); the value is parsed as JSON when it can be.",
        )
        parser.add_argument("--owner", help="Pick the graph by name among this user's graphs.")
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print the final execution as JSON on stdout (progress goes to stderr).",
        )

    def _graph(self, ref: str, owner: str | None) -> Graph:
        try:
            return graph_get_by_reference(reference=ref, owner_username=owner)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

    def handle(self, *args, **options):
        graph = self._graph(options["graph"], options.get("owner"))
        inputs = dict(parse_input(item) for item in options["input"])
        out = self.stderr if options["json"] else self.stdout
        try:
            execution = execution_create(
                user=graph.owner, graph=graph, inputs=inputs, dispatch=False
            )
        except ApplicationError as exc:
            details = "; ".join(
                f"{key}: {e['field']}: {e['message']}"
                for key, entries in exc.errors.items()
                for e in entries
            )
            raise CommandError(f"{exc.message} {details}".strip()) from None

        labels = {n["id"]: n.get("label") or n["type"] for n in execution.snapshot["nodes"]}
        printer = _Printer(out, labels)
        out.write(f"Execution {execution.id} of {graph.name!r} (version {graph.version})")
        # Waited on through an Event, not Thread.join: a join interrupted by Ctrl-C leaves the
        # Thread looking finished on Python 3.11 (cpython#90882).
        done = threading.Event()

        def run():
            try:
                execution_run(execution.id)
            finally:
                done.set()

        runner = threading.Thread(target=run, daemon=True)
        with listen(events.execution_topic(execution.id), printer):
            runner.start()
            try:
                while not done.wait(0.1):
                    pass
            except KeyboardInterrupt:
                out.write("\nCancelling…")
                execution_cancel(execution=execution)
                done.wait(10)
        execution = Execution.objects.prefetch_related("node_runs").get(pk=execution.id)
        printer.finish_line()
        if execution.outputs:
            out.write("Outputs:")
            for name, value in execution.outputs.items():
                shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                out.write(f"  {name}: {shown}")
        total = ""
        if execution.started_at and execution.finished_at:
            total = f" in {(execution.finished_at - execution.started_at).total_seconds():.3f} s"
        out.write(f"Status: {execution.status}{total}")
        if execution.error:
            out.write(f"Error: {execution.error}")
        if options["json"]:
            self.stdout.write(json.dumps(ExecutionSerializer(execution).data, default=str))
        if execution.status != "succeeded":
            sys.exit(1)


class _Printer:
    """Turns published events into lines; tokens are written as they arrive."""

    def __init__(self, out, labels: dict[str, str]):
        self.out = out
        self.labels = labels
        self.started: dict[str, datetime] = {}
        self.streaming: str | None = None
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def finish_line(self) -> None:
        if self.streaming is not None:
            self.out.write("")
            self.streaming = None

    def __call__(self, message: dict) -> None:
        event, data = message["event"], message["data"]
        node = data.get("node")
        name = f"{self.labels.get(node, node)} ({data.get('type')})" if node else ""
        with self.lock:
            if event == events.NODE_TOKEN:
                if self.streaming != node:
                    self.finish_line()
                    self.out.write(f"  {self.labels.get(node, node)} » ", ending="")
                    self.streaming = node
                self.out.write(data["text"], ending="")
                self.out.flush()
                return
            self.finish_line()
            ts = datetime.fromisoformat(message["ts"])
            if event == events.NODE_STARTED:
                self.started[node] = ts
                self.out.write(f"▶ {name} started")
            elif event in (events.NODE_COMPLETED, events.NODE_FAILED):
                took = ""
                if node in self.started:
                    took = f" in {(ts - self.started[node]).total_seconds() * 1000:.1f} ms"
                mark = "✓" if event == events.NODE_COMPLETED else "✗"
                line = f"{mark} {name} {data['status']}{took}"
                if data.get("error"):
                    line += f": {data['error']}"
                self.out.write(line)
            elif event == events.NODE_CACHED:
                self.out.write(f"✓ {name} cached")
            elif event == events.NODE_SKIPPED:
                self.out.write(f"- {name} skipped")
            elif event == events.NODE_RETRYING:
                self.out.write(
                    f"↻ {name} retrying (attempt {data.get('attempt')}): {data.get('error', '')}"
                )
            elif event == events.EXECUTION_STARTED:
                self.out.write("Running…")
