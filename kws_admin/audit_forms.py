"""The filters of Administration > Audit."""

from django import forms

from core.audit import audit_accounts, audit_kinds


class AuditFilterForm(forms.Form):
    account = forms.ChoiceField(label="Account", required=False)
    kind = forms.ChoiceField(label="Object kind", required=False)
    object = forms.CharField(label="Object", required=False, max_length=200)
    since = forms.DateTimeField(
        label="From (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    until = forms.DateTimeField(
        label="To (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    text = forms.CharField(label="Text", required=False, max_length=200)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        accounts = audit_accounts()
        wanted = self.data.get("account", "")
        if wanted and wanted not in accounts:
            accounts.append(wanted)  # an account with no record yet: an empty list, no error
        self.fields["account"].choices = [("", "all")] + [(a, a) for a in accounts]
        self.fields["kind"].choices = [("", "all")] + list(audit_kinds().items())

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until <= since:
            self.add_error("until", "must be after the start of the time range")
        return cleaned
