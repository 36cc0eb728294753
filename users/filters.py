import django_filters
from django.db.models import Q

from users.models import DectUser, Node, SipRegistration
from users.selectors import own_letter


class DectUserFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label="Search", method="search")
    node = django_filters.ChoiceFilter(label="NODE", choices=Node.choices, empty_label="all")
    subscription = django_filters.ChoiceFilter(
        choices=DectUser.Subscription.choices, empty_label="all"
    )
    registration = django_filters.ChoiceFilter(
        label="Registration",
        choices=SipRegistration.State.choices,
        empty_label="all",
        method="by_registration",
    )

    class Meta:
        model = DectUser
        fields = ["q", "node", "subscription", "registration"]

    def __init__(self, *args, own_letter: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # The NODE letter of this server's users, if the view has read it already.
        self.own_letter = own_letter

    @property
    def active(self) -> bool:
        """Whether any filter or the search narrows the list."""
        cleaned = getattr(self.form, "cleaned_data", {})
        return any(value not in (None, "") for value in cleaned.values())

    def search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        compact = value.replace(" ", "")
        return queryset.filter(
            Q(extension__startswith=value)
            | Q(display_name__icontains=value)
            | Q(sip_username__icontains=value)
            | Q(ipei__startswith=compact)
        )

    def by_registration(self, queryset, name, value):
        # Each user's state is this server's own for the users it handles, else the peer's.
        mine = Q(node=self.own_letter or own_letter())
        if value == SipRegistration.State.UNREGISTERED:
            own = Q(registration__isnull=True) | Q(registration__state=value)
            peer = Q(peer_registration__isnull=True) | Q(peer_registration__state=value)
        else:
            own, peer = Q(registration__state=value), Q(peer_registration__state=value)
        return queryset.filter((mine & own) | (~mine & peer))
