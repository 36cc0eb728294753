"""Input of the Licenses pages. The rules live in licensing.ari, .products and .order."""

from __future__ import annotations

from typing import Any

from django import forms

from licensing import products
from licensing.ari import EXAMPLE, AriError, ari_parse
from licensing.order import OrderRequest, order_check


class LicenseInstallForm(forms.Form):
    # Not required: the install service says what is wrong with an empty code too.
    code = forms.CharField(
        label="License code",
        required=False,
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "spellcheck": "false",
                "autocomplete": "off",
                "placeholder": "KWSL-XXXXXXXX-XXXXXXXX-...",
            }
        ),
    )


class SystemAriChangeForm(forms.Form):
    """The explicit change of the system ARI (every handset must be re-subscribed)."""

    ari = forms.CharField(
        label="New system ARI",
        max_length=40,
        widget=forms.TextInput(attrs={"placeholder": EXAMPLE, "spellcheck": "false"}),
    )
    resubscribe = forms.BooleanField(
        label="I understand that every handset must be re-subscribed to the new ARI",
        error_messages={"required": "Tick this: every handset must be re-subscribed."},
    )

    def clean_ari(self) -> str:
        try:
            return ari_parse(self.cleaned_data["ari"])
        except AriError as exc:
            raise forms.ValidationError(str(exc)) from None


def _ari_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=40,
        help_text=help_text,
        widget=forms.TextInput(attrs={"placeholder": EXAMPLE, "spellcheck": "false"}),
    )


class OrderRequestForm(forms.Form):
    situation = forms.ChoiceField(
        label="Situation",
        choices=[
            ("pair", "New redundant pair: a master and a backup server"),
            (
                "upgrade",
                "Upgrade an existing single server: it becomes the master, "
                "a new server is the backup",
            ),
        ],  # fmt: skip
        widget=forms.RadioSelect,
    )
    master_ari = _ari_field(
        "Master server ARI",
        "In an upgrade: the existing server's ARI. Shown on that server's Licenses page.",
    )
    backup_ari = _ari_field(
        "Backup server ARI",
        "In an upgrade: the NEW backup server's ARI, shown on its own Licenses page once it "
        "is installed.",
    )
    users = forms.IntegerField(
        label="Users (both servers)",
        required=False,
        min_value=0,
        max_value=products.MAX_USERS,
        help_text="The licensed user count the system needs; both servers get the same. "
        "Leave empty for none.",
    )
    features = forms.MultipleChoiceField(
        label="Features (both servers)",
        required=False,
        choices=[(name, f"{name}: {text}") for name, (_, text) in products.FEATURES.items()],
        widget=forms.CheckboxSelectMultiple,
    )
    reference = forms.CharField(
        label="Your reference",
        required=False,
        max_length=200,
        help_text="Customer, site or purchase order number, printed on the request.",
    )

    def _clean_ari(self, name: str) -> str:
        try:
            return ari_parse(self.cleaned_data[name])
        except AriError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_master_ari(self) -> str:
        return self._clean_ari("master_ari")

    def clean_backup_ari(self) -> str:
        return self._clean_ari("backup_ari")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors:
            for field, message in order_check(self.order()).items():
                self.add_error(field, message)
        return data

    def order(self) -> OrderRequest:
        data = self.cleaned_data
        return OrderRequest(
            master_ari=data["master_ari"],
            backup_ari=data["backup_ari"],
            upgrade=data["situation"] == "upgrade",
            users=data.get("users") or 0,
            features=tuple(sorted(data.get("features") or ())),
            reference=data.get("reference", "").strip(),
        )
