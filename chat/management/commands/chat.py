"""``manage.py chat --provider ollama --model llama3.2``: chat in the terminal.

Reads one message per line from stdin, streams each reply as it arrives, and stores the
conversation exactly as the API does (``chat.services`` and ``chat.replies``), so it shows up in
``/api/conversations/`` and the admin. ``--conversation ID`` continues an existing one.
Commands at the prompt: ``/regenerate`` (replace the last reply), ``/quit`` (or end of input).
Ctrl-C while a reply streams stops it (stored as ``cancelled``); at the prompt it exits.
The command exits 1 when a reply failed (the cause, the provider's own words included, is on
stderr), so a script sees the failure.
"""

from __future__ import annotations

import sys

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from canvas.core import events
from canvas.core.exceptions import ApplicationError
from chat import replies, selectors, services
from chat.models import ChatProvider, Conversation, Message


class Command(BaseCommand):
    help = "Chat with an Ollama or Groq model in the terminal; the conversation is stored."
    # call_command(..., stdin=io.StringIO(...)) in tests.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("--provider", choices=ChatProvider.values, default="ollama")
        parser.add_argument("--model", help="e.g. llama3.2 (Ollama) or llama-3.3-70b-versatile.")
        parser.add_argument(
            "--user",
            help="Owner of the conversation (a username); defaults to the only superuser.",
        )
        parser.add_argument("--conversation", help="Continue this conversation (its id).")
        parser.add_argument("--system", default="", help="The system prompt of a new one.")
        parser.add_argument("--title", default="", help="The title of a new conversation.")

    def handle(self, *args, **options):
        stdin = options.get("stdin") or sys.stdin
        interactive = hasattr(stdin, "isatty") and stdin.isatty()
        user = self._user(options["user"])
        conversation = self._conversation(user, options)
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"Conversation {conversation.pk} with {conversation.provider}/"
                f"{conversation.model}. /regenerate, /quit; Ctrl-C stops a reply."
            )
        )
        failed = 0
        while True:
            if interactive:
                self.stdout.write("you> ", ending="")
                self.stdout.flush()
            try:
                line = stdin.readline()
            except KeyboardInterrupt:
                break
            if not line:
                break
            text = line.rstrip("\n")
            if not text.strip():
                continue
            if text.strip() in {"/quit", "/exit"}:
                break
            try:
                if text.strip() == "/regenerate":
                    turn = services.reply_begin(user=user, conversation_id=conversation.pk)
                else:
                    turn = services.message_begin(
                        user=user, conversation_id=conversation.pk, content=text
                    )
            except ApplicationError as exc:
                self.stderr.write(exc.message)
                failed += 1
                continue
            if not self._reply(turn):
                failed += 1
        if failed:
            raise CommandError(f"{failed} repl{'y' if failed == 1 else 'ies'} failed.")

    def _user(self, username: str | None):
        users = get_user_model().objects.filter(is_active=True)
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(f"No active user {username!r}.")
            return user
        superusers = list(users.filter(is_superuser=True)[:2])
        if len(superusers) != 1:
            raise CommandError("Say who owns the conversation: --user USERNAME.")
        return superusers[0]

    def _conversation(self, user, options) -> Conversation:
        if options["conversation"]:
            try:
                return selectors.conversation_get_for_user(
                    user=user, conversation_id=options["conversation"]
                )
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
        if not options["model"]:
            raise CommandError("--model is required for a new conversation.")
        try:
            return services.conversation_create(
                owner=user,
                provider=options["provider"],
                model=options["model"],
                system_prompt=options["system"],
                title=options["title"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc

    def _reply(self, turn: services.Turn) -> bool:
        """Stream one reply; False when it failed."""

        def emit(frame):
            if frame["type"] == events.CHAT_TOKEN:
                self.stdout.write(frame["text"], ending="")
                self.stdout.flush()

        self.stdout.write(self.style.HTTP_INFO("assistant> "), ending="")
        future = replies.executor().submit(replies.reply_run_in_thread, turn=turn, emit=emit)
        while True:
            try:
                message = future.result()
                break
            except KeyboardInterrupt:
                replies.cancel_local(turn.assistant_message.pk)
        self.stdout.write("")
        if message is None:
            return True
        if message.status == Message.Status.FAILED:
            error = message.error or {}
            cause = error.get("message", "")
            detail = error.get("detail")
            if detail and detail not in cause:
                cause = f"{cause} ({error.get('provider', 'provider')}: {detail})"
            self.stderr.write(self.style.ERROR(cause))
            return False
        if message.status == Message.Status.CANCELLED:
            self.stderr.write(self.style.WARNING("(stopped)"))
        return True
