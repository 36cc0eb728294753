"""The Licenses pages: this server's ARIs and licenses, entering a code, the order request."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.locks import Locked
from licensing import products
from licensing.codes import LicenseRefused
from licensing.forms import LicenseInstallForm, OrderRequestForm
from licensing.order import UPGRADE_WARNING, order_filename, order_servers, order_text
from licensing.selectors import licenses_overview, order_initial, order_known_licenses
from licensing.services import license_install as license_install_service

PAGE = "licensing/list.html"
PARTIAL = "licensing/partials/licenses.html"


def _render_list(
    request: HttpRequest, form: LicenseInstallForm, note: str = "", status: int = 200
) -> HttpResponse:
    context = {"overview": licenses_overview(), "form": form, "note": note}
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
