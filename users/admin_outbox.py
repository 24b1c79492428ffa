"""Django admin for the outbox: HODs see pending, sent and failed e-mails and events and retry failed ones."""

from django.contrib import admin, messages

from users.admin import HODPermissionsMixin
from users.models import OutboxMessage
from users.services.outbox import outbox_retry_failed


@admin.register(OutboxMessage)
class OutboxMessageAdmin(HODPermissionsMixin, admin.ModelAdmin):
    list_display = ("id", "kind", "topic", "status", "attempts", "created_at", "available_at", "sent_at")
    list_filter = ("status", "kind", "topic")
    search_fields = ("=id", "topic", "last_error")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]
    actions = ["retry_failed"]
    show_full_result_count = False  # the table can be large: no COUNT(*) over all rows per page

    def has_add_permission(self, request, *args) -> bool:
        return False

    @admin.action(description="Retry the selected failed messages", permissions=["change"])
    def retry_failed(self, request, queryset) -> None:
        ids = [str(pk) for pk in queryset.filter(status=OutboxMessage.Status.FAILED).values_list("pk", flat=True)]
        count = outbox_retry_failed(message_ids=ids)
        skipped = queryset.count() - count
        self.message_user(request, f"{count} message(s) put back in the queue.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} selected message(s) were not failed and were left alone.")
