"""The Licenses pages: this server's ARIs and licenses, entering a code, the order request."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core import config
from core.locks import Locked
from core.reauth import password_confirmed
from licensing import products
from licensing.codes import LicenseRefused
from licensing.forms import LicenseInstallForm, OrderRequestForm, SystemAriChangeForm
from licensing.order import UPGRADE_WARNING, order_filename, order_servers, order_text
from licensing.selectors import licenses_overview, order_initial, order_known_licenses
from licensing.services import license_install as license_install_service
from licensing.services import system_ari_change as system_ari_change_service

PAGE = "licensing/list.html"
PARTIAL = "licensing/partials/licenses.html"


def _render_list(
    request: HttpRequest,
    form: LicenseInstallForm,
    note: str = "",
    status: int = 200,
    ari_form: SystemAriChangeForm | None = None,
) -> HttpResponse:
    context = {
        "overview": licenses_overview(),
        "form": form,
        "note": note,
        "ari_form": ari_form or SystemAriChangeForm(),
    }
    template = PARTIAL if request.htmx and not request.htmx.boosted else PAGE
    return render(request, template, context, status=status)


@require_GET
def license_list(request: HttpRequest) -> HttpResponse:
    return _render_list(request, LicenseInstallForm())


@require_POST
def license_install(request: HttpRequest) -> HttpResponse:
    """Install the entered code; a refusal is shown on the form and nothing changes."""
    form = LicenseInstallForm(request.POST)
    form.is_valid()
    try:
        installed = license_install_service(
            text=form.cleaned_data.get("code", ""), actor=request.user.get_username()
        )
    except LicenseRefused as exc:
        form.add_error("code", f"Refused, nothing changed: {exc.message}.")
        return _render_list(request, form)
    except Locked as exc:
        form.add_error("code", f"Refused, nothing changed: configuration locked: {exc.reason}.")
        return _render_list(request, form)
    label = products.product_label(installed.product)
    note = f"License {label} installed (serial {installed.serial_text})."
    if request.htmx:
        return _render_list(request, LicenseInstallForm(), note)
    messages.success(request, note)
    return redirect("license_list")


@require_POST
def system_ari_change(request: HttpRequest) -> HttpResponse:
    """The explicit change of the system ARI: the new ARI, the confirmation that every
    handset will be re-subscribed, and the administrator's password again."""
    form = SystemAriChangeForm(request.POST)
    if not form.is_valid():
        return _render_list(request, LicenseInstallForm(), status=400, ari_form=form)
    if not password_confirmed(request):
        return redirect("license_list")
    try:
        new = system_ari_change_service(
            ari=form.cleaned_data["ari"], actor=request.user.get_username()
        )
    except config.ConfigError as exc:
        for message in exc.errors.values():
            form.add_error("ari", f"Refused, nothing changed: {message}.")
        return _render_list(request, LicenseInstallForm(), status=400, ari_form=form)
    except Locked as exc:
        form.add_error("ari", f"Refused, nothing changed: configuration locked: {exc.reason}.")
        return _render_list(request, LicenseInstallForm(), status=423, ari_form=form)
    messages.warning(request, f"The system ARI is now {new}: re-subscribe every handset to it.")
    return redirect("license_list")


def _order(form: OrderRequestForm) -> tuple[str, list]:
    order = form.order()
    servers = order_servers(
        order,
        master_licensed=order_known_licenses(role="master", ari=order.master_ari),
        backup_licensed=order_known_licenses(role="slave", ari=order.backup_ari),
    )
    return order_text(order, servers=servers, today=timezone.localdate()), servers


@require_GET
def license_order(request: HttpRequest) -> HttpResponse:
    """The order request page: a GET form that builds the text to send to the vendor."""
    if "master_ari" in request.GET:
        form = OrderRequestForm(request.GET)
    else:
        form = OrderRequestForm(initial=order_initial())
    context = {"form": form, "upgrade_warning": UPGRADE_WARNING}
    if form.is_bound and form.is_valid():
        text, servers = _order(form)
        context.update(
            text=text,
            servers=servers,
            upgrade=form.order().upgrade,
            download_query=request.GET.urlencode(),
            # Long lines wrap in the text box: count them as the lines they take.
            text_rows=sum(1 + len(line) // 110 for line in text.splitlines()) + 1,
        )
    return render(request, "licensing/order.html", context)


@require_GET
def license_order_download(request: HttpRequest) -> HttpResponse:
    """The order request as a text/plain attachment (the same parameters as the page)."""
    form = OrderRequestForm(request.GET)
    if not form.is_valid():
        lines = [
            f"{form.fields[name].label if name in form.fields else name}: {error}"
            for name, errors in form.errors.items()
            for error in errors
        ]
        return HttpResponse(
            "The order request is not complete:\n" + "\n".join(lines) + "\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    text, _ = _order(form)
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{order_filename(form.order())}"'
    return response
