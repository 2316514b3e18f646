from __future__ import annotations

from django import forms

from .models import User

REFRESH_CHOICES = [
    ("", "Site default"),
    ("5", "Every 5 minutes"),
    ("15", "Every 15 minutes"),
    ("30", "Every 30 minutes"),
    ("60", "Every hour"),
]


class SettingsForm(forms.Form):
    valuation_currency = forms.ChoiceField(label="Show totals in", choices=User.Currency.choices)
    refresh_minutes = forms.TypedChoiceField(
        label="Refresh balances", choices=REFRESH_CHOICES, coerce=int, empty_value=None, required=False
    )


class DeleteAccountForm(forms.Form):
    confirm = forms.CharField(label="Type DELETE to confirm", max_length=10)

    def clean_confirm(self) -> str:
        if self.cleaned_data["confirm"].strip() != "DELETE":
            raise forms.ValidationError("Type DELETE in capitals to confirm.")
        return "DELETE"
