from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from core import config
from core.locks import write_check
from core.models import Event, NodeState
from core.peer import PeerError
from core.reauth import password_confirmed
from core.rules import Scope
from core.selectors import config_read
from core.services import config_update
from core.services import database_uuid_reset as database_uuid_reset_service
from redundancy import scenarios, statistics
from redundancy.forms import RedundancyForm
from redundancy.heartbeat import peer_probe
from redundancy.runner import failover_time_applied
from redundancy.selectors import pair_overview


def status(request):
    own, peer, state = pair_overview()
    context = {
        "own": own,
        "peer": peer,
        "state": state,
        "detection_window": settings.DETECTION_WINDOW,
        "pbx": config_read()["sip.registrar"],
        "demo_control": bool(settings.DEMO_CONTROL_DIR),
    }
    template = "redundancy/partials/pair_status.html" if request.htmx else "redundancy/status.html"
    return render(request, template, context)


def _peer_checked(request, form: RedundancyForm, values: dict) -> bool:
    """Try the peer address about to be saved (a signed probe) and say what answered;
    False (the form says why) when it does not answer and saving anyway was not asked."""
    changes = form.changes()
    mode = changes.get("redundancy.mode", values["redundancy.mode"])
    peer = changes.get("redundancy.peer", values["redundancy.peer"])
    secret = changes.get("redundancy.secret", values["redundancy.secret"])
    if mode == "single" or not peer or not secret:
        return True  # the configuration rules say what is missing
    unchanged = (mode, peer, secret) == (
        values["redundancy.mode"],
        values["redundancy.peer"],
        values["redundancy.secret"],
    )
    if unchanged:
        return True
    try:
        probe = peer_probe(peer=peer, secret=secret)
    except ValueError:
        return True  # not an address: the rules refuse it with their own words
    if probe.ok:
        messages.info(request, f"Peer check: {probe.message}.")
        return True
    if probe.reached:
        messages.warning(request, f"Peer check: {probe.message}.")
        return True
    if form.cleaned_data.get("save_unreachable"):
        messages.warning(request, f"Peer check: {probe.message}; saved as asked.")
        return True
    form.add_error("peer", f"{probe.message}. Nothing was saved: check the address, or tick "
                           "'Save even if the peer does not answer'.")  # fmt: skip
    return False


def redundancy_settings(request):
    values = config_read()
    state = NodeState.load()
    applied, source = failover_time_applied(values, state)
    if request.method == "POST":
        # Locked (a backup in failover): refused with 423 before anything is tried.
        write_check(Scope.LOCAL)
        form = RedundancyForm(request.POST, backup=values["redundancy.mode"] == "slave")
        if form.is_valid() and _peer_checked(request, form, values):
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
        form = RedundancyForm(
            initial=RedundancyForm.initial_from(values), backup=values["redundancy.mode"] == "slave"
        )
    return render(
        request,
        "redundancy/settings.html",
        {
            "form": form,
            "database_uuid": values["redundancy.database_uuid"],
            "secret_set": bool(values["redundancy.secret"]),
            "mode": values["redundancy.mode"],
            "state": state,
            "failover_applied": applied,
            "failover_source": source,
            "failover_own": values["redundancy.failover_time"],
        },
    )


@require_POST
def backup_promote(request):
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the confirmation to promote this backup to master.")
        return redirect("redundancy_settings")
    if not password_confirmed(request):
        return redirect("redundancy_settings")
    try:
        handled = scenarios.backup_promote(
            actor=request.user.username, master_off=request.POST.get("master_off") == "yes"
        )
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
    if not password_confirmed(request):
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
    if not password_confirmed(request):
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


def statistics_page(request):
    """Status > Statistics: the counters of this server and its peer side by side, and
    the last 24 hours of each (read only; the page polls)."""
    own, peer = statistics.statistics_overview()
    context = {
        "own": own,
        "peer": peer,
        "columns": [own] if peer is None else [own, peer],
        "pbx": config_read()["sip.registrar"],
        "demo_control": bool(settings.DEMO_CONTROL_DIR),
    }
    if request.htmx:
        return render(request, "redundancy/partials/statistics_table.html", context)
    context["charts"] = statistics.chart_build(statistics.samples_recent(), now=timezone.now())
    context["sample_every"] = settings.STATISTICS_SAMPLE_EVERY
    return render(request, "redundancy/statistics.html", context)


def statistics_peer_chart(request):
    """The peer's last 24 hours, asked from the peer when the page loads (a fragment)."""
    context: dict = {"charts": None, "error": ""}
    if config_read()["redundancy.mode"] == "single":
        context["error"] = "a single server has no peer"
    else:
        try:
            context["name"], samples = statistics.peer_samples()
        except (PeerError, ValueError) as exc:
            context["error"] = str(exc)
        else:
            context["charts"] = statistics.chart_build(samples, now=timezone.now())
    return render(request, "redundancy/partials/statistics_peer_chart.html", context)


@require_POST
def statistics_reset(request):
    """Start this server's counters from 0 (local: the peer keeps its own)."""
    statistics.statistics_reset(actor=request.user.username)
    messages.success(request, f"The counters of {settings.NODE_NAME} start from 0 again.")
    return redirect("statistics")
