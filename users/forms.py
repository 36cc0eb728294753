from django import forms

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
