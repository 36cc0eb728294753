from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_tables2 import RequestConfig

from basestations.selectors import handsets_last_seen
from core import config
from core.locks import write_check
from core.rules import Scope
from core.selectors import config_read
from core.services import config_update
from users import csv_io, services
from users.config import REREGISTER_KEYS
from users.filters import DectUserFilter
from users.forms import CsvImportForm, DectUserForm, SipSettingsForm
from users.models import DectUser
from users.selectors import (
    sip_summary,
    user_list_counts,
    user_list_node,
    user_list_rows,
    users_with_node,
)
from users.tables import CountedPaginator, DectUserTable

PER_PAGE = 50


def user_list(request):
    node = user_list_node()
    rows = user_list_rows(node)
    filterset = DectUserFilter(request.GET, queryset=rows, own_letter=node.own_letter)
    table = DectUserTable(filterset.qs, rows=rows, own_letter=node.own_letter)
    counts = user_list_counts(filterset.qs, filtered=filterset.active, total=node.users)
    paginate = {"per_page": PER_PAGE, "paginator_class": CountedPaginator, "count": counts.matching}
    RequestConfig(request, paginate=paginate).configure(table)
    table.seen = handsets_last_seen([row.record.extension for row in table.page.object_list])
    context = {"filter": filterset, "table": table, "total": counts.total}
    if request.htmx and not request.htmx.boosted:
        return render(request, "users/partials/user_table.html", context)
    return render(request, "users/list.html", context)


def _form_errors(form: DectUserForm, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def user_create(request):
    form = DectUserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.dect_user_create(
                actor=request.user.username, **form.changes(keep_empty_password=False)
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"User {user.extension} added.")
            return redirect("user_list")
    return render(request, "users/form.html", {"form": form, "title": "Add user"})


def user_edit(request, pk: int):
    user = get_object_or_404(users_with_node(), pk=pk)
    if request.method == "POST":
        form = DectUserForm(request.POST, editing=True)
        if form.is_valid():
            try:
                services.dect_user_update(
                    user=user, actor=request.user.username, **form.changes(keep_empty_password=True)
                )
            except ValidationError as exc:
                _form_errors(form, exc)
            else:
                messages.success(request, f"User {user.extension} saved.")
                return redirect("user_list")
    else:
        form = DectUserForm(initial=DectUserForm.initial_from(user), editing=True)
    return render(
        request,
        "users/form.html",
        {"form": form, "title": f"User {user.extension}", "user_obj": user},
    )


@require_POST
def user_delete(request, pk: int):
    user = get_object_or_404(DectUser, pk=pk)
    extension = user.extension
    services.dect_user_delete(user=user, actor=request.user.username)
    messages.success(request, f"User {extension} deleted.")
    return redirect("user_list")


def user_export(request):
    include = request.GET.get("passwords") == "yes"
    text = csv_io.dect_users_export(
        DectUser.objects.order_by("extension"), include_passwords=include
    )
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="kws-users-{stamp}.csv"'
    return response


def user_import(request):
    form = CsvImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        try:
            report = csv_io.dect_users_import(
                data=form.cleaned_data["file"].read(), actor=request.user.username
            )
        except csv_io.ImportRefused as exc:
            report = exc.report
        else:
            messages.success(
                request, f"Imported: {report.created} users added, {report.updated} updated."
            )
            return redirect("user_list")
    return render(request, "users/import.html", {"form": form, "report": report,
                                                 "columns": csv_io.COLUMNS})  # fmt: skip


def sip_settings(request):
    """Configuration > SIP: the PBX settings (the master's, replicated) and this server's
    registration state, which the page polls."""
    if request.method == "GET" and request.htmx and not request.htmx.boosted:
        return render(request, "users/partials/sip_state.html", {"sip": sip_summary()})
    if request.method == "POST":
        # Shared settings: refused with 423 on a backup and during a failover, before
        # anything is looked at.
        write_check(Scope.SHARED)
        form = SipSettingsForm(request.POST)
        if form.is_valid():
            try:
                change = config_update(changes=form.changes(), actor=request.user.username)
            except config.ConfigError as exc:
                form.add_config_errors(exc)
            else:
                for note in change.notes:
                    messages.info(request, note)
                _sip_saved(request, change.changed)
                return redirect("sip_settings")
    else:
        form = SipSettingsForm(initial=SipSettingsForm.initial_from(config_read()))
    return render(request, "users/sip_settings.html", {"form": form, "sip": sip_summary()})


def _sip_saved(request, changed: dict) -> None:
    if not changed:
        messages.info(request, "Nothing changed.")
        return
    messages.success(request, "SIP settings saved.")
    values = config_read()
    registrar = values["sip.registrar"]
    single = values["redundancy.mode"] == "single"
    if not registrar:
        who = "this server un-registers its" if single else "both servers un-register their"
        messages.warning(request, f"No registrar: {who} users, which cannot make calls.")
    elif REREGISTER_KEYS & set(changed):
        who = "This server registers its" if single else "Both servers register their"
        messages.info(
            request,
            f"{who} users again with {registrar}; the Status page shows the progress.",
        )
    else:
        messages.info(
            request,
            "The rate applies from the next registration and the expiry at each refresh; "
            "registered users stay registered.",
        )
