from collections.abc import Callable
from typing import Any

import django_tables2 as tables
from django.core.paginator import Paginator
from django.db.models import F, Lookup, QuerySet, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django_tables2.data import TableQuerysetData

from users import ipei
from users.models import DectUser


def _when(moment) -> str:
    """A registration's time: the clock time today, the date too before today."""
    local = timezone.localtime(moment)
    if local.date() == timezone.localdate():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


class CountedPaginator(Paginator):
    """A paginator told the count (``users.selectors.user_list_counts`` reads it with the
    total, in one query) instead of asking the database again."""

    def __init__(self, object_list, per_page, *args, count: int, **kwargs):
        super().__init__(object_list, per_page, *args, **kwargs)
        self.count = count  # over the cached_property


# Orderings that already give each user one place: the extension is unique and never empty.
UNIQUE_ORDERINGS = {"pk", "id", "extension"}


class DectUserData(TableQuerysetData):
    """The Users list's rows (``data``: the search's and filters' users; ``rows``: every
    user, as ``users.selectors.user_list_rows`` annotates them). Every sort ends with a
    unique column (the primary key unless it already does), so users with equal values
    keep one place and each appears on exactly one page. A page is read in one query
    that picks its ids first, from the users' own columns and the joins only the sort
    needs, and then loads those rows with their registrations: the database sorts ids,
    not whole rows, to skip the pages before it, and tests the filters once."""

    def __init__(self, data: QuerySet[DectUser], *, rows: QuerySet[DectUser]):
        super().__init__(data)
        self.rows = rows

    def order_by(self, aliases):
        super().order_by(aliases)
        ordering = list(self.data.query.order_by)
        if ordering and _bare(ordering[-1]) not in UNIQUE_ORDERINGS:
            # Along the first key's direction: an index on (column, id) serves both ways.
            descending = isinstance(ordering[0], str) and ordering[0].startswith("-")
            self.data = self.data.order_by(*ordering, "-pk" if descending else "pk")

    def __getitem__(self, key):
        if not isinstance(key, slice):
            return super().__getitem__(key)
        ids = self.data.values("pk")[key]
        page = self.rows.filter(_InIds(F("pk"), Subquery(ids)))
        return page.order_by(*self.data.query.order_by) if self.data.query.order_by else page


def _bare(ordering: Any) -> str | None:
    return ordering.lstrip("-") if isinstance(ordering, str) else None


class _InIds(Lookup):
    """``lhs IN (sub-select)``, for a sub-select of at most a page of ids. PostgreSQL gets
    them as an array (``lhs = ANY(ARRAY(...))``), which it reads first and then looks up by
    primary key: for ``IN (...)`` it plans a hash semi-join that scans every user."""

    lookup_name = "in_ids"

    def _as(self, template: str, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return template % (lhs, rhs), (*lhs_params, *rhs_params)

    def as_sql(self, compiler, connection):
        return self._as("%s IN %s", compiler, connection)

    def as_postgresql(self, compiler, connection):
        return self._as("%s = ANY(ARRAY%s)", compiler, connection)


class DectUserTable(tables.Table):
    extension = tables.Column(linkify=("user_edit", {"pk": tables.A("pk")}))
    display_name = tables.Column(verbose_name="Display name")
    ipei = tables.Column(verbose_name="IPEI")
    access_code = tables.Column(verbose_name="Access code")
    sip_username = tables.Column(verbose_name="SIP user")
    sip_password = tables.Column(verbose_name="SIP password", orderable=False, empty_values=())
    subscription = tables.Column()
    registration = tables.Column(
        verbose_name="Registration",
        accessor="registration__state",
        empty_values=(),  # a user without a registration row still renders "not registered"
    )
    last_seen = tables.Column(verbose_name="Last seen", empty_values=(), orderable=False)
    # Annotated by users.selectors.users_with_node: who handles the user now.
    node = tables.Column(verbose_name="NODE", attrs={"td": {"class": "node"}})

    class Meta:
        model = DectUser
        fields = ("extension", "display_name", "ipei", "access_code", "sip_username",
                  "sip_password", "subscription", "registration", "last_seen")  # fmt: skip
        sequence = ("...", "node")
        template_name = "users/partials/user_table.html"
        attrs = {"class": "list users"}
        empty_text = "No users match."

    def __init__(self, data, *args, rows: QuerySet[DectUser], own_letter: str = "M", **kwargs):
        super().__init__(DectUserData(data, rows=rows), *args, **kwargs)
        self.own_letter = own_letter
        # Where the handsets of the shown page were last seen (set by the view: one query).
        self.seen: dict = {}

    def page_rows(self) -> list[SafeString]:
        """The shown page's rows as HTML, each cell as django-tables2 renders it (the
        column's ``render_*``, else its value or, when empty, its default; the extension
        linked to the user), with each column's <td> attributes and renderer worked out
        once a page: django-tables2 rebuilds the attributes and inspects the render
        method's signature for each of a page's 500 cells, most of the request's time."""
        columns = [(column.attrs["td"].as_html(), self._cell(column)) for column in self.columns]
        return [
            mark_safe(  # noqa: S308 (format_html_join escaped every value)
                "<tr>" + format_html_join("", "<td {}>{}</td>", (
                    (attrs, cell(row.record)) for attrs, cell in columns)) + "</tr>"
            )
            for row in self.paginated_rows
        ]  # fmt: skip

    def _cell(self, column) -> Callable[[DectUser], Any]:
        name, default = column.name, column.default
        renderers: dict[str, Callable[[DectUser], Any]] = {
            "extension": lambda r: format_html(
                '<a href="{}">{}</a>', reverse("user_edit", kwargs={"pk": r.pk}), r.extension
            ),
            "ipei": lambda r: self.render_ipei(r.ipei) if r.ipei else default,
            "sip_password": lambda r: self.render_sip_password(r.sip_password),
            "subscription": lambda r: r.get_subscription_display(),
            "registration": lambda r: self.render_registration(r),
            "last_seen": lambda r: self.render_last_seen(r),
        }
        if name in renderers:
            return renderers[name]
        return lambda r: (
            value if (value := getattr(r, name)) not in column.column.empty_values else default
        )

    def render_last_seen(self, record):
        seen = self.seen.get(record.extension)
        if seen is None:
            return "—"
        return format_html(
            '{} <small class="reason">{}</small>',
            seen.basestation,
            seen.seen_at.strftime("%H:%M:%S"),
        )

    def render_ipei(self, value):
        return ipei.display(value)

    def render_sip_password(self, value):
        # Never the password itself: whether one is set.
        return "set" if value else "—"

    def registration_of(self, record):
        """The row that says how this user is registered: this server's for the users it
        handles, else what the peer's heartbeats reported."""
        if record.node == self.own_letter:
            return getattr(record, "registration", None)
        return getattr(record, "peer_registration", None)

    def order_registration(self, queryset, is_descending):
        # registration_state: annotated by users.selectors.user_list_rows.
        direction = "-" if is_descending else ""
        return queryset.order_by(f"{direction}registration_state", "extension"), True

    def render_registration(self, record):
        reg = self.registration_of(record)
        elsewhere = record.node != self.own_letter
        by = format_html(' <small class="by">{}</small>', "by the other server")
        by = by if elsewhere else ""
        if reg is None:
            return format_html(
                '<span class="reg reg-{}">{}</span>{}', "unregistered", "not registered", by
            )
        return format_html(
            '<span class="reg reg-{}" title="{}">{}</span>{}{} <small class="when">{}</small>',
            reg.state,
            reg.reason or "",
            reg.get_state_display(),
            format_html(' <small class="reason">{}</small>', reg.reason) if reg.reason else "",
            by,
            _when(reg.changed_at),
        )
