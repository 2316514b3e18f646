from __future__ import annotations

from django import forms
from django.db.models import Q

from .models import ExchangeConnection
from .services import access_key_fingerprint

# HTX keys are ASCII, a few dozen characters (e.g. "e2xxxxxx-99xxxxxx-84xxxxxx-7xxxx").
# The bounds are loose on purpose; they only stop pastes that cannot be a key.
KEY_MIN, KEY_MAX = 16, 128


def _clean_key(value: str, name: str) -> str:
    value = "".join(value.split())  # pasted keys often carry spaces or line breaks
    if not value:
        raise forms.ValidationError(f"Paste your HTX {name}.")
    if not value.isascii() or not value.isprintable():
        raise forms.ValidationError(
            f"The {name} contains characters HTX never uses (non-Latin letters or symbols). "
            "Copy it again from HTX; browser auto-translation can change keys."
        )
    if not KEY_MIN <= len(value) <= KEY_MAX:
        raise forms.ValidationError(
            f"The {name} is {len(value)} characters long; HTX keys are about 30 to 40. "
            "Check that you copied all of it, and nothing else."
        )
    return value


class HtxConnectionForm(forms.Form):
    label = forms.CharField(
        required=False,
        max_length=64,
        strip=True,
        help_text="Optional, e.g. “Main account”. Only you see it.",
    )
    access_key = forms.CharField(
        label="API Key",
        max_length=512,
        strip=True,
        error_messages={"required": "Paste your HTX API Key."},
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off", "translate": "no"}
        ),
        help_text="HTX calls it the Access Key.",
    )
    secret_key = forms.CharField(
        label="Secret Key",
        max_length=512,
        strip=True,
        error_messages={"required": "Paste your HTX Secret Key."},
        # render_value=False: the secret is never sent back to the browser.
        widget=forms.PasswordInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off", "translate": "no"}
        ),
        help_text="Shown once by HTX when you created the key. Stored encrypted, never shown again.",
    )

    def __init__(self, *args, owner=None, replacing: ExchangeConnection | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.replacing = replacing

    def clean_access_key(self) -> str:
        return _clean_key(self.cleaned_data["access_key"], "API Key")

    def clean_secret_key(self) -> str:
        return _clean_key(self.cleaned_data["secret_key"], "Secret Key")

    def clean(self) -> dict:
        data = super().clean()
        access_key, secret_key = data.get("access_key"), data.get("secret_key")
        if not access_key or not secret_key:
            return data
        if access_key == secret_key:
            raise forms.ValidationError(
                "The API Key and the Secret Key are the same. HTX shows two different values: "
                "paste the Access Key into API Key and the Secret Key into Secret Key."
            )
        fingerprint = access_key_fingerprint(access_key)
        existing = ExchangeConnection.objects.filter(
            Q(access_key_fingerprint=fingerprint) | Q(pending_fingerprint=fingerprint)
        ).first()
        if existing is not None and existing == self.replacing:
            self.add_error("access_key", "This is the key this connection already uses.")
        elif existing is not None:
            if existing.owner_id == getattr(self.owner, "pk", None):
                self.add_error("access_key", "This API key is already connected to your account.")
            else:
                # Bitsgap's "API Account Lock": one key, one dashboard account.
                self.add_error(
                    "access_key",
                    "This API key is already connected to another account here. "
                    "Create a separate key on HTX for this account.",
                )
        return data


class ReplaceKeysForm(HtxConnectionForm):
    """A new key for an existing connection: same checks, no label."""

    label = None


class RenameForm(forms.Form):
    label = forms.CharField(required=False, max_length=64, strip=True, help_text="Leave empty to show “HTX”.")
