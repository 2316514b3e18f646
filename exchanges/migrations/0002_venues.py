"""The venue seam: the exchange is a venue id from settings.VENUES (no choices, so adding a venue
needs no migration), HTX's uid becomes a neutral account uid (a string), and the key facts every
venue reports (permission flags, IP restriction without a list, the trading right's expiry)."""

from django.db import migrations, models


def _no_uid_is_empty(apps, schema_editor):
    Connection = apps.get_model("exchanges", "ExchangeConnection")
    Connection.objects.filter(account_uid__isnull=True).update(account_uid="")


# HTX was the only venue before: its permission flags as the new key facts show them.
_HTX_FLAGS = (
    ("readOnly", "Read", False, True),
    ("trade", "Trade", False, True),
    ("withdraw", "Withdraw", True, False),
)


def _htx_flags(apps, schema_editor):
    Connection = apps.get_model("exchanges", "ExchangeConnection")
    for connection in Connection.objects.filter(exchange="htx", key_info_known=True).exclude(permissions=""):
        held = set(connection.permissions.split(","))
        connection.key_flags = [
            [name, code in held, danger, required] for code, name, danger, required in _HTX_FLAGS
        ]
        connection.ip_restricted = bool(connection.ip_addresses)
        connection.save(update_fields=["key_flags", "ip_restricted"])


class Migration(migrations.Migration):
    dependencies = [("exchanges", "0001_initial")]

    operations = [
        migrations.AlterField(
            model_name="exchangeconnection",
            name="exchange",
            field=models.CharField(default="htx", max_length=32),
        ),
        migrations.RenameField(model_name="exchangeconnection", old_name="htx_uid", new_name="account_uid"),
        migrations.AlterField(
            model_name="exchangeconnection",
            name="account_uid",
            field=models.CharField(blank=True, null=True, max_length=64),
        ),
        migrations.RunPython(_no_uid_is_empty, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="exchangeconnection",
            name="account_uid",
            field=models.CharField(blank=True, default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="exchangeconnection",
            name="permissions",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="exchangeconnection",
            name="key_flags",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="exchangeconnection",
            name="ip_restricted",
            field=models.BooleanField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="exchangeconnection",
            name="trading_expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(_htx_flags, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="exchangeconnection",
            name="status",
            field=models.CharField(
                choices=[
                    ("verifying", "Verifying"),
                    ("connected", "Connected"),
                    ("expired", "Expired"),
                    ("withdraw_enabled", "Withdrawal enabled"),
                    ("incorrect_permissions", "Incorrect permissions"),
                    ("trading_expired", "Trading expired"),
                    ("invalid", "Invalid"),
                    ("ip_not_allowed", "IP not allowed"),
                    ("temporary", "Temporary issue"),
                ],
                default="verifying",
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="connectionevent",
            name="status",
            field=models.CharField(
                choices=[
                    ("verifying", "Verifying"),
                    ("connected", "Connected"),
                    ("expired", "Expired"),
                    ("withdraw_enabled", "Withdrawal enabled"),
                    ("incorrect_permissions", "Incorrect permissions"),
                    ("trading_expired", "Trading expired"),
                    ("invalid", "Invalid"),
                    ("ip_not_allowed", "IP not allowed"),
                    ("temporary", "Temporary issue"),
                ],
                max_length=32,
            ),
        ),
    ]
