import django_filters
from django.db.models import Q

from users.models import DectUser, Node, SipRegistration


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
        if value == SipRegistration.State.UNREGISTERED:
            return queryset.filter(Q(registration__isnull=True) | Q(registration__state=value))
        return queryset.filter(registration__state=value)
