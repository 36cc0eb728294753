import django_filters

from basestations.selectors import AttachmentView, attachment_filter, device_search

ATTACHED = (
    ("here", "to this server"),
    ("peer", "to the other server"),
    ("none", "not attached"),
    ("refused", "refused"),
)


class DeviceFilter(django_filters.FilterSet):
    """Search and attachment filter, shared by the base stations and media resources tables."""

    q = django_filters.CharFilter(label="Search", method="search")
    attached = django_filters.ChoiceFilter(
        label="Attached", choices=ATTACHED, empty_label="all", method="by_attachment"
    )

    def __init__(self, *args, view: AttachmentView, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.view = view

    def search(self, queryset, name, value):
        return device_search(queryset, value)

    def by_attachment(self, queryset, name, value):
        return attachment_filter(queryset, value, self.view)
