import django_filters
from django.db.models import Q

from users.models import DectUser, Node, PeerRegistration, SipRegistration
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
        # Sub-selects of the states' user ids, which the state indexes find, instead of
        # joining every user's registrations to test each row.
        mine = Q(node=self.own_letter or own_letter())
        if value == SipRegistration.State.UNREGISTERED:
            # No registration known counts as not registered.
            own = ~Q(pk__in=SipRegistration.objects.exclude(state=value).values("user_id"))
            peer = ~Q(pk__in=PeerRegistration.objects.exclude(state=value).values("user_id"))
        else:
            own = Q(pk__in=SipRegistration.objects.filter(state=value).values("user_id"))
            peer = Q(pk__in=PeerRegistration.objects.filter(state=value).values("user_id"))
        return queryset.filter((mine & own) | (~mine & peer))
