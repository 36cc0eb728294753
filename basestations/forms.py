from django import forms

from basestations.models import BaseStation, MediaResource
from basestations.services import CHANNELS_MAX


class BaseStationForm(forms.Form):
    """The fields an administrator edits; the rules live in basestations.services."""

    name = forms.CharField(max_length=64)
    mac = forms.CharField(
        max_length=20, label="MAC address",
        help_text="The base station's MAC, e.g. 00:13:D1:0A:0B:0C; it signs its keep-alives "
        "with the system's device secret.",
    )  # fmt: skip
    location = forms.CharField(max_length=100, required=False)

    FIELDS = ("name", "mac", "location")

    def changes(self) -> dict[str, object]:
        return {name: self.cleaned_data[name] for name in self.FIELDS}

    @classmethod
    def initial_from(cls, device: BaseStation | MediaResource) -> dict[str, object]:
        return {name: getattr(device, name) for name in cls.FIELDS}


class MediaResourceForm(BaseStationForm):
    channels = forms.IntegerField(
        min_value=1, max_value=CHANNELS_MAX, initial=32, help_text="Media channels it provides."
    )

    FIELDS = ("name", "mac", "channels", "location")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mac"].help_text = "The media resource's MAC, e.g. 00:13:D1:0A:0B:0D."
        self.order_fields(self.FIELDS)
