from __future__ import annotations

import django_tables2 as tables
from django.utils import timezone
from django.utils.html import format_html

from basestations.models import BaseStation, MediaResource
from basestations.selectors import AttachmentView


def _age(moment) -> str:
    seconds = max(0.0, (timezone.now() - moment).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


class _DeviceTable(tables.Table):
    """Columns shared by base stations and media resources; ``view`` says where each is attached."""

    mac = tables.Column(verbose_name="MAC", attrs={"td": {"class": "mac"}})
    ip = tables.Column(verbose_name="IP", accessor="link__ip", order_by="link__ip", default="—")
    firmware = tables.Column(accessor="link__firmware", order_by="link__firmware", default="—")
    state = tables.Column(accessor="link__state", order_by="link__state", empty_values=())
    attached = tables.Column(verbose_name="Attached to", empty_values=(), orderable=False)
    last_keepalive = tables.Column(
        verbose_name="Last keep-alive", accessor="link__last_keepalive_at",
        order_by="link__last_keepalive_at", empty_values=(),
    )  # fmt: skip

    def __init__(self, *args, view: AttachmentView, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.view = view

    def render_state(self, record):
        link = getattr(record, "link", None)
        if link is None or not link.state:
            return "—"
        return format_html('<span class="dev-state dev-state-{}">{}</span>', link.state,
                           link.state.replace("_", " "))  # fmt: skip

    def render_attached(self, record):
        found = self.view.of(record)
        return format_html(
            '<span class="attached attached-{}" title="{}">{}</span>',
            found.where, found.detail, found.server,
        )  # fmt: skip

    def render_last_keepalive(self, record):
        link = getattr(record, "link", None)
        if link is None or not link.last_keepalive_at:
            if link is not None and link.last_contact_at:
                contact = _age(link.last_contact_at)
                return format_html('<span class="help">contact {}</span>', contact)
            return "never"
        return _age(link.last_keepalive_at)


class BaseStationTable(_DeviceTable):
    name = tables.Column(linkify=("basestation_edit", {"pk": tables.A("pk")}))

    class Meta:
        model = BaseStation
        fields = ("name", "mac", "ip", "firmware", "state", "attached", "last_keepalive",
                  "location")  # fmt: skip
        sequence = fields
        template_name = "basestations/partials/basestation_table.html"
        attrs = {"class": "list devices basestations"}
        empty_text = "No base stations match."


class MediaResourceTable(_DeviceTable):
    name = tables.Column(linkify=("media_resource_edit", {"pk": tables.A("pk")}))
    channels = tables.Column(verbose_name="Channels", empty_values=())

    class Meta:
        model = MediaResource
        fields = ("name", "mac", "ip", "firmware", "channels", "state", "attached",
                  "last_keepalive", "location")  # fmt: skip
        sequence = fields
        template_name = "basestations/partials/media_table.html"
        attrs = {"class": "list devices media"}
        empty_text = "No media resources match."

    def render_channels(self, record):
        link = getattr(record, "link", None)
        in_use = link.channels_in_use if link is not None else None
        if in_use is None:
            return str(record.channels)
        return f"{in_use} of {record.channels} in use"
