from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_tables2 import RequestConfig

from basestations import selectors, services
from basestations.filters import DeviceFilter
from basestations.forms import BaseStationForm, MediaResourceForm
from basestations.models import BaseStation, MediaResource
from basestations.replication import device_key
from basestations.tables import BaseStationTable, MediaResourceTable
from core.selectors import config_read

PER_PAGE = 50
FRAGMENTS = {
    "basestation-table": "basestations/partials/basestation_table.html",
    "media-table": "basestations/partials/media_table.html",
}


def basestation_list(request):
    """Base stations and media resources with their live state (htmx polls each table)."""
    view = selectors.attachment_view()
    filters = {
        kind: DeviceFilter(request.GET, queryset=queryset, view=view)
        for kind, queryset in (
            ("rfp", selectors.basestation_queryset()),
            ("media", selectors.media_resource_queryset()),
        )
    }
    basestations = BaseStationTable(filters["rfp"].qs, view=view)
    media = MediaResourceTable(filters["media"].qs, view=view, prefix="media-")
    paginate = {"per_page": PER_PAGE}
    RequestConfig(request, paginate=paginate).configure(basestations)
    RequestConfig(request, paginate=paginate).configure(media)
    context = {
        "filter": filters["rfp"],
        "table": basestations,
        "media_table": media,
        "summary": selectors.devices_summary(view),
        "view": view,
        "secret_set": bool(config_read()["system.device_secret"]),
    }
    if request.htmx and not request.htmx.boosted:
        fragment = FRAGMENTS.get(request.htmx.target or "", FRAGMENTS["basestation-table"])
        return render(request, fragment, context)
    return render(request, "basestations/list.html", context)


def _form_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


KINDS = {
    "rfp": {
        "model": BaseStation,
        "form": BaseStationForm,
        "create": services.basestation_create,
        "label": "Base station",
        "delete_url": "basestation_delete",
    },
    "media": {
        "model": MediaResource,
        "form": MediaResourceForm,
        "create": services.media_resource_create,
        "label": "Media resource",
        "delete_url": "media_resource_delete",
    },
}


def _update(kind: str, device, actor: str, changes):
    if kind == "rfp":
        return services.basestation_update(basestation=device, actor=actor, **changes)
    return services.media_resource_update(media_resource=device, actor=actor, **changes)


def _create(request, kind: str):
    spec = KINDS[kind]
    form = spec["form"](request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = spec["create"](actor=request.user.username, **form.changes())
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"{spec['label']} {device.name} added.")
            return redirect("basestation_list")
    return render(
        request, "basestations/form.html", {"form": form, "title": f"Add {spec['label'].lower()}"}
    )


def _edit(request, kind: str, pk: int):
    spec = KINDS[kind]
    device = get_object_or_404(spec["model"], pk=pk)
    if request.method == "POST":
        form = spec["form"](request.POST)
        if form.is_valid():
            try:
                _update(kind, device, request.user.username, form.changes())
            except ValidationError as exc:
                _form_errors(form, exc)
            else:
                messages.success(request, f"{spec['label']} {device.name} saved.")
                return redirect("basestation_list")
    else:
        form = spec["form"](initial=spec["form"].initial_from(device))
    context = {
        "form": form,
        "title": f"{spec['label']} {device.name}",
        "device": device,
        "label": spec["label"].lower(),
        "delete_url": spec["delete_url"],
        "audit_id": device_key(device),  # its history: the Audit page filtered on it
    }
    return render(request, "basestations/form.html", context)


def basestation_create(request):
    return _create(request, "rfp")


def basestation_edit(request, pk: int):
    return _edit(request, "rfp", pk)


@require_POST
def basestation_delete(request, pk: int):
    device = get_object_or_404(BaseStation, pk=pk)
    name = device.name
    services.basestation_delete(basestation=device, actor=request.user.username)
    messages.success(request, f"Base station {name} deleted.")
    return redirect("basestation_list")


def media_resource_create(request):
    return _create(request, "media")


def media_resource_edit(request, pk: int):
    return _edit(request, "media", pk)


@require_POST
def media_resource_delete(request, pk: int):
    device = get_object_or_404(MediaResource, pk=pk)
    name = device.name
    services.media_resource_delete(media_resource=device, actor=request.user.username)
    messages.success(request, f"Media resource {name} deleted.")
    return redirect("basestation_list")
