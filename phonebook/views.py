from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core import config as core_config
from core.locks import write_check
from core.rules import Scope
from core.selectors import config_read
from core.services import config_update
from phonebook import config, csv_io, directory, services
from phonebook.forms import FIELD_KEYS, CsvUploadForm, PhonebookForm
from phonebook.models import PhonebookEntry


def _page(request, form: PhonebookForm, *, upload: CsvUploadForm | None = None,
          problems: csv_io.CsvRefused | None = None, status: int = 200):  # fmt: skip
    values = config_read()
    context = {
        "form": form,
        "upload": upload or CsvUploadForm(),
        "problems": problems,
        "password_set": bool(values[config.BIND_PASSWORD_KEY]),
        "source": values[config.SOURCE_KEY],
        "redundant": values["redundancy.mode"] in services.REDUNDANT_MODES,
        "csv_conflict": config.CSV_CONFLICT,
        "csv_entries": PhonebookEntry.objects.count(),
    }
    return render(request, "phonebook/settings.html", context, status=status)


def phonebook_settings(request):
    if request.method == "POST":
        # Locked (a backup, a failover): refused with 423 before anything is tried.
        write_check(Scope.SHARED)
        form = PhonebookForm(request.POST)
        if form.is_valid():
            try:
                change = config_update(changes=form.changes(), actor=request.user.username)
            except core_config.ConfigError as exc:
                form.add_config_errors(exc)
            else:
                for note in change.notes:
                    messages.info(request, note)
                if change.changed:
                    messages.success(request, "Corporate phonebook settings saved.")
                else:
                    messages.info(request, "Nothing changed.")
                return redirect("phonebook_settings")
        return _page(request, form)
    return _page(request, PhonebookForm(initial=PhonebookForm.initial_from(config_read())))


@require_POST
def phonebook_test(request):
    """Test connection (htmx): the LDAP settings of the form, or the saved ones where
    the form sends none (a read-only page on a backup tests the master's settings)."""
    changes = {
        key: request.POST[name]
        for name, key in FIELD_KEYS.items()
        if name in request.POST and key != config.SOURCE_KEY
    }
    if not changes.get(config.BIND_PASSWORD_KEY):
        changes.pop(config.BIND_PASSWORD_KEY, None)
    ok, text = True, ""
    try:
        text = services.phonebook_test(changes=changes)
    except core_config.ConfigError as exc:
        ok = False
        text = "Not tested: " + "; ".join(
            f"{core_config.KEYS[k].label if k in core_config.KEYS else k}: {m}"
            for k, m in exc.errors.items()
        )
    except directory.DirectoryError as exc:
        ok, text = False, f"Connection test failed: {exc}."
    return render(request, "phonebook/partials/test_result.html", {"ok": ok, "text": text})


def phonebook_search(request):
    text = request.GET.get("q", "").strip()[: services.SEARCH_MAX]
    result = services.phonebook_search(text=text) if text else None
    template = "phonebook/partials/search_results.html"
    return render(request, template, {"q": text, "result": result})


@require_POST
def phonebook_csv_upload(request):
    write_check(Scope.SHARED)
    upload = CsvUploadForm(request.POST, request.FILES)
    form = PhonebookForm(initial=PhonebookForm.initial_from(config_read()))
    if not upload.is_valid():
        return _page(request, form, upload=upload, status=400)
    try:
        stored = services.phonebook_csv_replace(
            data=upload.cleaned_data["file"].read(), actor=request.user.username
        )
    except services.CsvUploadRefused as exc:
        upload.add_error("file", str(exc))
        return _page(request, form, upload=upload, status=400)
    except csv_io.CsvRefused as exc:
        return _page(request, form, upload=upload, problems=exc, status=400)
    messages.success(request, f"CSV phonebook stored: {stored} entries (replacing the previous).")
    return redirect("phonebook_settings")
