from __future__ import annotations

from django import forms
from django.db.models import Q

from .models import ExchangeConnection
from .services import access_key_fingerprint
from .venues.kit.types import Credentials
from .venues.kit.venue import Venue

_KEY_INPUT = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off", "translate": "no"}


class ConnectionForm(forms.Form):
    """The connect dialog of one venue: its credential fields (API Key, Secret Key, and any
    extra it asks for), cleaned by the venue's own format rules before any network call."""

    label = forms.CharField(
        required=False,
        max_length=64,
        strip=True,
        help_text="Optional, e.g. “Main account”. Only you see it.",
    )

    def __init__(
        self, *args, venue: Venue, owner=None, replacing: ExchangeConnection | None = None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.venue = venue
        self.owner = owner
        self.replacing = replacing
        for spec in venue.credential_fields:
            if spec.choices:
                if self.replacing is None:  # a replacement key belongs to the connection's site
                    self.fields[spec.name] = forms.ChoiceField(
                        label=spec.label,
                        choices=spec.choices,
                        initial=spec.choices[0][0],
                        help_text=spec.help,
                    )
                continue
            attrs = dict(_KEY_INPUT)
            if spec.multiline:
                widget = forms.Textarea(attrs={**attrs, "rows": 4})
            elif spec.secret:
                # render_value=False: a secret is never sent back to the browser.
                widget = forms.PasswordInput(attrs=attrs)
            else:
                widget = forms.TextInput(attrs=attrs)
            self.fields[spec.name] = forms.CharField(
                label=spec.label,
                max_length=4096 if spec.multiline else 512,
                strip=True,
                widget=widget,
                help_text=spec.help,
                error_messages={"required": f"Paste your {venue.name} {spec.label}."},
            )

    def clean(self) -> dict:
        data = super().clean()
        names = [spec.name for spec in self.venue.credential_fields if spec.name in self.fields]
        for name in ("access_key", "secret_key"):
            if name in data:
                data[name] = "".join(data[name].split())  # pasted keys carry spaces or line breaks
        given = {name: data.get(name) or "" for name in names}
        credentials = Credentials(
            given["access_key"],
            given["secret_key"],
            {name: value for name, value in given.items() if name not in ("access_key", "secret_key")},
        )
        complete = all(given.values()) and not self.errors
        # The venue's format rules, for every field that was filled in (an empty one already
        # says "Paste your ..."); rules about the pair only once every field is there.
        problems = {
            field: message
            for field, message in self.venue.validate(credentials).items()
            if (field == "__all__" and complete) or given.get(field)
        }
        for field, message in problems.items():
            self.add_error(None if field == "__all__" else field, message)
        if complete and not problems:
            self._check_not_connected(given["access_key"])
        return data

    def _check_not_connected(self, access_key: str) -> None:
        """Only the user's own connections are told apart here: whether another account uses
        this key is said only to whoever proves the secret, once the venue has accepted it
        (keycheck), so an API Key alone learns nothing. One query whoever asks."""
        fingerprint = access_key_fingerprint(access_key)
        owner_id = getattr(self.owner, "pk", None)
        own = set(
            ExchangeConnection.objects.filter(exchange=self.venue.id, owner_id=owner_id)
            .filter(Q(access_key_fingerprint=fingerprint) | Q(pending_fingerprint=fingerprint))
            .values_list("pk", flat=True)
        )
        if self.replacing is not None and self.replacing.pk in own:
            self.add_error("access_key", "This is the key this connection already uses.")
        elif own:
            self.add_error("access_key", "This API key is already connected to your account.")

    @property
    def credentials(self) -> dict[str, str]:
        """The cleaned credential fields (and the site, where the venue has several), by name."""
        return {
            spec.name: self.cleaned_data[spec.name]
            for spec in self.venue.credential_fields
            if spec.name in self.fields
        }


class ReplaceKeysForm(ConnectionForm):
    """A new key for an existing connection: same checks, no label."""

    label = None


class RenameForm(forms.Form):
    label = forms.CharField(
        required=False, max_length=64, strip=True, help_text="Leave empty to show the exchange's name."
    )
