from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core import config
from core.models import Event, NodeState
from core.selectors import config_read
from core.services import config_update
from core.services import database_uuid_reset as database_uuid_reset_service
from redundancy import scenarios
from redundancy.forms import RedundancyForm
from redundancy.selectors import pair_overview


def status(request):
    own, peer, state = pair_overview()
    context = {
        "own": own,
        "peer": peer,
        "state": state,
        "detection_window": settings.DETECTION_WINDOW,
        "pbx": config_read()["sip.registrar"],
    }
    template = "redundancy/partials/pair_status.html" if request.htmx else "redundancy/status.html"
    return render(request, template, context)


def redundancy_settings(request):
    values = config_read()
    if request.method == "POST":
        form = RedundancyForm(request.POST)
        if form.is_valid():
            try:
                change = config_update(changes=form.changes(), actor=request.user.username)
            except config.ConfigError as exc:
                form.add_config_errors(exc)
            else:
                for note in change.notes:
                    messages.info(request, note)
                if change.changed:
                    messages.success(request, "Redundancy settings saved.")
                else:
                    messages.info(request, "Nothing changed.")
                return redirect("redundancy_settings")
    else:
        form = RedundancyForm(initial=RedundancyForm.initial_from(values))
    return render(
        request,
        "redundancy/settings.html",
        {
            "form": form,
            "database_uuid": values["redundancy.database_uuid"],
            "secret_set": bool(values["redundancy.secret"]),
            "mode": values["redundancy.mode"],
            "state": NodeState.load(),
        },
    )


def _password_confirmed(request) -> bool:
    """The administrator typed his password again (a destructive scenario): checked like
    a login, so wrong guesses count towards the lockout."""
    password = request.POST.get("password", "")
    user = authenticate(request, username=request.user.get_username(), password=password)
    if user is not None and user.pk == request.user.pk:
        return True
    messages.error(request, "Your password was not right: nothing changed.")
    return False


@require_POST
def backup_promote(request):
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the confirmation to promote this backup to master.")
        return redirect("redundancy_settings")
    if not _password_confirmed(request):
        return redirect("redundancy_settings")
    try:
        handled = scenarios.backup_promote(actor=request.user.username)
    except scenarios.ScenarioError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"This server is now the master and handles all {handled} users.")
    return redirect("redundancy_settings")


@require_POST
def switchover(request):
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the confirmation to swap the roles of master and backup.")
        return redirect("redundancy_settings")
    if not _password_confirmed(request):
        return redirect("redundancy_settings")
    try:
        result = scenarios.switchover_start(actor=request.user.username)
    except scenarios.ScenarioError as exc:
        messages.error(request, f"Switchover refused, nothing changed: {exc}")
    else:
        messages.success(
            request,
            f"{result['new_master']} is now the master with every change up to position "
            f"{result['head']}; this server is now the backup.",
        )
    return redirect("redundancy_settings")


@require_POST
def database_uuid_reset(request):
    if not _password_confirmed(request):
        return redirect("redundancy_settings")
    change = database_uuid_reset_service(actor=request.user.username)
    for note in change.notes:
        messages.info(request, note)
    new_uuid = change.changed.get("redundancy.database_uuid")
    if new_uuid:
        messages.success(request, f"New database UUID: {new_uuid}")
    elif "redundancy.database_uuid" in change.changed:
        messages.success(
            request, "Database UUID reset: it is fetched from the master when this backup joins."
        )
    return redirect("redundancy_settings")


def event_list(request):
    events = Event.objects.all()
    kind = request.GET.get("kind", "")
    severity = request.GET.get("severity", "")
    if kind:
        events = events.filter(kind=kind)
    if severity:
        events = events.filter(severity=severity)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    kinds = Event.objects.order_by("kind").values_list("kind", flat=True).distinct()
    context = {
        "page": page,
        "kinds": kinds,
        "kind": kind,
        "severity": severity,
        "severities": Event.Severity.choices,
    }
    template = "redundancy/partials/event_table.html" if request.htmx else "redundancy/events.html"
    return render(request, template, context)
