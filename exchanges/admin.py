from django.contrib import admin

from .models import ExchangeConnection, SeenAddress


@admin.register(ExchangeConnection)
class ExchangeConnectionAdmin(admin.ModelAdmin):
    # No key material: only the masked key, never the access key or secret fields.
    list_display = (
        "id",
        "owner",
        "exchange",
        "label",
        "masked_access_key",
        "status",
        "total_usdt",
        "last_refreshed_at",
    )
    list_filter = ("status", "exchange")
    fields = (
        "owner",
        "exchange",
        "label",
        "status",
        "error_kind",
        "error_detail",
        "account_uid",
        "permissions",
        "ip_addresses",
        "key_expires_at",
        "trading_expires_at",
        "total_usdt",
        "last_verified_at",
        "last_refreshed_at",
    )
    readonly_fields = fields
    search_fields = ("label", "owner__email")


@admin.register(SeenAddress)
class SeenAddressAdmin(admin.ModelAdmin):
    # What exchanges said they saw: delete a stale one here after changing EGRESS_IPS.
    list_display = ("exchange", "site", "ip", "seen_at", "first_seen_at")
    list_filter = ("exchange",)
    readonly_fields = ("exchange", "site", "ip", "seen_at", "first_seen_at")
