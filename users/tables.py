import django_tables2 as tables
from django.utils.html import format_html

from users import ipei
from users.models import DectUser


class DectUserTable(tables.Table):
    extension = tables.Column(linkify=("user_edit", {"pk": tables.A("pk")}))
    display_name = tables.Column(verbose_name="Display name")
    ipei = tables.Column(verbose_name="IPEI")
    sip_username = tables.Column(verbose_name="SIP user")
    subscription = tables.Column()
    registration = tables.Column(
        verbose_name="Registration",
        accessor="registration__state",
        order_by="registration__state",
        empty_values=(),  # a user without a registration row still renders "not registered"
    )
    last_seen = tables.Column(verbose_name="Last seen", empty_values=(), orderable=False)
    node = tables.Column(verbose_name="NODE", attrs={"td": {"class": "node"}})

    class Meta:
        model = DectUser
        fields = ("extension", "display_name", "ipei", "sip_username", "subscription",
                  "registration", "last_seen", "node")  # fmt: skip
        template_name = "users/partials/user_table.html"
        attrs = {"class": "list users"}
        empty_text = "No users match."

    def __init__(self, *args, own_letter: str = "M", **kwargs):
        super().__init__(*args, **kwargs)
        self.own_letter = own_letter
        # Where the handsets of the shown page were last seen (set by the view: one query).
        self.seen: dict = {}

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

    def render_registration(self, record):
        if record.node != self.own_letter:
            # The other server registers this user; its state is on that server's list.
            return format_html('<span class="reg reg-elsewhere">{}</span>', "by the other server")
        reg = getattr(record, "registration", None)
        if reg is None:
            return format_html(
                '<span class="reg reg-{}">{}</span>', "unregistered", "not registered"
            )
        title = reg.reason or ""
        return format_html(
            '<span class="reg reg-{}" title="{}">{}</span>{}',
            reg.state,
            title,
            reg.get_state_display(),
            format_html(' <small class="reason">{}</small>', reg.reason) if reg.reason else "",
        )
