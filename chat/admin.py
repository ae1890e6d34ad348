from django.contrib import admin

from chat.models import Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    ordering = ["position"]
    fields = ["position", "role", "status", "content", "model", "error", "usage", "created_at"]
    readonly_fields = ["created_at"]
    show_change_link = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "provider", "model", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["title", "model", "owner__username"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [MessageInline]
