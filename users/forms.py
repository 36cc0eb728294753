from django import forms

from core import config
from users.models import DectUser


class DectUserForm(forms.Form):
    """The fields an administrator edits; the rules live in users.services."""

    extension = forms.CharField(max_length=32)
    display_name = forms.CharField(max_length=100, required=False, label="Display name")
    ipei = forms.CharField(
        max_length=20, required=False, label="IPEI",
        help_text="5-digit EMC, 7-digit PSN and check digit, e.g. 03180 0400000 8",
    )  # fmt: skip
    access_code = forms.CharField(max_length=8, required=False, label="Access code")
    sip_username = forms.CharField(max_length=64, required=False, label="SIP authentication user")
    sip_password = forms.CharField(
        max_length=128, required=False, label="SIP password",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )  # fmt: skip
    subscription = forms.ChoiceField(choices=DectUser.Subscription.choices)

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            self.fields["sip_password"].help_text = "Leave empty to keep the current password."

    def changes(self, *, keep_empty_password: bool) -> dict[str, str]:
        data = dict(self.cleaned_data)
        if keep_empty_password and not data["sip_password"]:
            del data["sip_password"]
        return data

    @staticmethod
    def initial_from(user: DectUser) -> dict[str, str]:
        return {
            "extension": user.extension,
            "display_name": user.display_name,
            "ipei": user.ipei or "",
            "access_code": user.access_code,
            "sip_username": user.sip_username,
            "subscription": user.subscription,
        }


class CsvImportForm(forms.Form):
    file = forms.FileField(label="CSV file")


# Form field -> configuration key (users/config.py). The rules live in the keys: each field
# takes text and config_update says what it refuses, beside the field.
SIP_FIELD_KEYS = {
    "registrar": "sip.registrar",
    "transport": "sip.transport",
    "domain": "sip.domain",
    "rate": "sip.rate",
    "rate_max": "sip.rate_max",
    "expires": "sip.expires",
}


def _key_field(key: str, label: str, **kwargs) -> forms.CharField:
    return forms.CharField(
        label=label, required=False, help_text=config.KEYS[key].help, strip=False, **kwargs
    )


class SipSettingsForm(forms.Form):
    registrar = _key_field("sip.registrar", "Registrar")
    # A select that posts text: a value outside the list is refused by the key's rule.
    transport = _key_field(
        "sip.transport", "Transport", widget=forms.Select(choices=[("udp", "UDP"), ("tcp", "TCP")])
    )
    domain = _key_field("sip.domain", "Domain")
    rate = _key_field("sip.rate", "Registration rate (auto or per second)")
    rate_max = _key_field("sip.rate_max", "Rate ceiling (REGISTERs per second)")
    expires = _key_field("sip.expires", "Registration expiry (s)")

    def changes(self) -> dict[str, str]:
        return {key: self.cleaned_data[name] for name, key in SIP_FIELD_KEYS.items()}

    def add_config_errors(self, exc: config.ConfigError) -> None:
        by_key = {key: name for name, key in SIP_FIELD_KEYS.items()}
        for key, message in exc.errors.items():
            name = by_key.get(key)
            label = config.KEYS[key].label if key in config.KEYS else key
            self.add_error(name, f"{label}: {message}" if name is None else message)

    @staticmethod
    def initial_from(values: dict) -> dict[str, str]:
        return {name: config.format_value(key, values[key]) for name, key in SIP_FIELD_KEYS.items()}
