"""``manage.py recover_executions``: take over runs whose worker died, re-send lost dispatches.

Workers run the same sweep when they start and every ``WORKFLOW_RECOVERY_INTERVAL`` seconds;
this command is for operators and cron. With ``WORKFLOW_EXECUTOR=celery`` it re-dispatches
to the workers; with ``inline`` (or ``--run-here``) it runs the recovered executions in this
process and waits for them, since an inline pool would die with the command.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import BaseCommand

from workflows.engine import execution_run
from workflows.models import Execution
from workflows.recovery import executions_recover


class Command(BaseCommand):
    help = (
        "Resume executions whose worker died and re-dispatch queued ones whose dispatch was lost."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Only list what would be recovered."
        )
        parser.add_argument(
            "--run-here",
            action="store_true",
            help="Run the recovered executions in this process (the default when inline).",
        )

    def handle(self, *args, **options):
        run_here = options["run_here"] or settings.WORKFLOW_EXECUTOR == "inline"
        found = executions_recover(dispatch=not (options["dry_run"] or run_here))
        ids = [*found["stale"], *found["queued"]]
        self.stdout.write(
            f"{len(found['stale'])} stale running, {len(found['queued'])} queued without a worker"
        )
        for execution_id in found["stale"]:
            self.stdout.write(f"  stale  {execution_id}")
        for execution_id in found["queued"]:
            self.stdout.write(f"  queued {execution_id}")
        if options["dry_run"] or not ids:
            return
        if not run_here:
            self.stdout.write("Dispatched to the workers.")
            return
        workers = max(1, settings.WORKFLOW_MAX_CONCURRENT_EXECUTIONS)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(execution_run, ids))
        for execution in Execution.objects.filter(pk__in=ids).order_by("queued_at"):
            self.stdout.write(f"  {execution.id}: {execution.status}")
