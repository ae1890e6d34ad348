"""The chat API: conversations CRUD, their messages (DRF cursor paging), sending, regenerating.

Views parse, authorize through the owner's selectors, call a service and render. A message POST
(and a regenerate) runs the provider call in the request thread and answers 201 with both
messages, also when the provider failed: the reply is then the stored ``failed`` message. Its
tokens also stream to every socket subscribed to ``conversation:<id>``.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers as drf_serializers
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from canvas.core.exceptions import NotFoundError
from canvas.core.idempotency import idempotent
from canvas.core.idempotency import schema_parameter as idempotency_header
from canvas.core.pagination import NewestPageCursorPagination
from canvas.core.schema import idempotency_responses
from canvas.core.throttles import ChatThrottle
from canvas.core.viewsets import OwnerScopedViewSet
from chat import replies, selectors, services
from chat.models import Conversation, Message
from chat.realtime import conversation_emitter
from chat.serializers import (
    ConversationInputSerializer,
    ConversationListItemSerializer,
    ConversationSerializer,
    MessageInputSerializer,
    MessageListQuerySerializer,
    MessagePairSerializer,
    MessageSerializer,
)

MESSAGE_PAGE = inline_serializer(
    name="MessagePage",
    fields={
        "count": drf_serializers.IntegerField(),
        "next": drf_serializers.URLField(allow_null=True),
        "previous": drf_serializers.URLField(allow_null=True),
        "results": MessageSerializer(many=True),
    },
)


class MessagePagination(NewestPageCursorPagination):
    ordering = "-position"
    # The page size comes from the validated query (MessageListQuerySerializer).
    page_size_query_param = None


@extend_schema_view(
    list=extend_schema(
        summary="Your conversations, most recently active first",
        responses=ConversationListItemSerializer(many=True),
    ),
    retrieve=extend_schema(summary="One of your conversations"),
    create=extend_schema(
        summary="Start a conversation (the model is not checked: Ollama may pull it later)",
        request=ConversationInputSerializer,
        responses={201: ConversationSerializer},
    ),
    update=extend_schema(
        summary="Replace a conversation's settings",
        request=ConversationInputSerializer,
        responses={200: ConversationSerializer},
    ),
    partial_update=extend_schema(
        summary="Change some of a conversation's settings",
        request=ConversationInputSerializer,
        responses={200: ConversationSerializer},
    ),
    destroy=extend_schema(summary="Delete a conversation and its messages"),
)
class ConversationViewSet(OwnerScopedViewSet):
    """Conversations with Ollama and Groq models. Another user's conversation is a 404."""

    model = Conversation
    serializer_class = ConversationSerializer

    def get_throttles(self):
        # Sends and regenerations call a provider: counted per user.
        if self.action in ("messages", "regenerate") and self.request.method == "POST":
            return [ChatThrottle()]
        return super().get_throttles()

    def owner_queryset(self, user):
        return selectors.conversation_list_for_user(user=user)

    def owner_object(self, user, pk):
        return selectors.conversation_get_for_user(user=user, conversation_id=pk)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        items = ConversationListItemSerializer(page, many=True, context={"request": request})
        return self.get_paginated_response(items.data)

    def retrieve(self, request, pk=None):
        return Response(ConversationSerializer(self.get_object()).data)

    def create(self, request):
        data = ConversationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = services.conversation_create(owner=request.user, **data.validated_data)
        return Response(ConversationSerializer(conversation).data, status=status.HTTP_201_CREATED)

    def update(self, request, pk=None):
        return self._update(request, partial=False)

    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool):
        conversation = self.get_object()
        data = ConversationInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        if not partial:
            # PUT replaces: what is left out goes back to its default.
            changes = {"title": "", "system_prompt": "", "options": {}, **changes}
        conversation = services.conversation_update(conversation=conversation, **changes)
        return Response(ConversationSerializer(conversation).data)

    def destroy(self, request, pk=None):
        services.conversation_delete(conversation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- messages ------------------------------------------------------------------------

    @extend_schema(
        methods=["GET"],
        summary="A page of messages, oldest first: the newest page, then older ones through "
        "`previous` (and newer ones through `next`)",
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, description="from `next` / `previous`"),
            OpenApiParameter("page_size", int, description="messages per page"),
        ],
        responses={200: MESSAGE_PAGE},
    )
    @extend_schema(
        methods=["POST"],
        summary="Send a message; answers with it and the reply (a failed reply is stored too)",
        parameters=[idempotency_header()],
        request=MessageInputSerializer,
        responses={
            201: MessagePairSerializer,
            **idempotency_responses(),
        },
    )
    @action(detail=True, methods=["get", "post"])
    def messages(self, request, pk=None):
        if request.method == "POST":
            return self._send(request)
        conversation = self.get_object()
        query = MessageListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        paginator = MessagePagination()
        paginator.page_size = query.validated_data.get(
            "page_size", settings.CHAT_MESSAGES_PAGE_SIZE
        )
        page = paginator.paginate_queryset(
            selectors.message_list(conversation=conversation), request, view=self
        )
        return paginator.get_paginated_response(MessageSerializer(page, many=True).data)

    @idempotent(
        replay=lambda request, message_id: _message_pair_response(request.user, message_id),
        # A reply streams for up to the provider's read timeout; a retry meanwhile is a 409.
        in_flight_seconds=settings.HTTP_READ_TIMEOUT + 60,
    )
    def _send(self, request, *, idempotency):
        data = MessageInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        turn = services.message_begin(
            user=request.user,
            conversation_id=self.kwargs["pk"],
            content=data.validated_data["content"],
            idempotency=idempotency,
        )
        return self._run(turn)

    @extend_schema(
        summary="Replace the last reply with a new one",
        request=None,
        responses={201: MessagePairSerializer},
    )
    @action(detail=True, methods=["post"])
    def regenerate(self, request, pk=None):
        turn = services.reply_begin(user=request.user, conversation_id=pk)
        return self._run(turn)

    def _run(self, turn: services.Turn) -> Response:
        emit = conversation_emitter(turn.conversation.pk)
        reply = replies.reply_run(turn=turn, emit=emit)
        if reply is None:
            # Another outcome won (a cancel gave the reply up) or the conversation is gone.
            reply = Message.objects.filter(pk=turn.assistant_message.pk).first()
            if reply is None:
                raise NotFoundError("No such conversation.")
        return Response(
            {
                "user_message": MessageSerializer(turn.user_message).data,
                "assistant_message": MessageSerializer(reply).data,
            },
            status=status.HTTP_201_CREATED,
        )


def _message_pair_response(user, message_id) -> Response:
    """The answer of a message POST whose first answer was lost, from what it stored."""
    message, reply = selectors.message_pair_for_user(user=user, message_id=message_id)
    return Response(
        {
            "user_message": MessageSerializer(message).data,
            "assistant_message": MessageSerializer(reply).data if reply else None,
        },
        status=status.HTTP_201_CREATED,
    )
