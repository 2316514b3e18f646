from django.contrib import admin

from .models import Alert, Delivery


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    readonly_fields = (
        "channel",
        "key",
        "digest",
        "state",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error",
    )
    can_delete = False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "kind", "title", "created_at")
    list_filter = ("kind",)
    readonly_fields = (
        "user",
        "connection",
        "kind",
        "dedupe_key",
        "title",
        "happened",
        "fix",
        "link",
        "created_at",
    )
    inlines = [DeliveryInline]
