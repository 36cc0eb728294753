"""Administration > Backup and restore: download a backup, preview a restore, confirm it.

The rules are ``core.backup``'s; between the preview and the confirmation the file
waits in the node's data folder, sealed with a key only the session holds.
"""

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.backup import (
    CHANGED_SINCE_PREVIEW,
    RestoreError,
    backup_build,
    backup_open,
    backup_restore,
    restore_pending_discard,
    restore_pending_load,
    restore_pending_save,
)
from core.locks import write_check
from core.reauth import password_confirmed
from kws_admin.backup_forms import BackupDownloadForm, RestoreUploadForm

PENDING = "backup_restore_pending"
TEMPLATE = "kws_admin/backup.html"
UPLOAD_IDS = "restore_%s"  # both forms have a passphrase field


def _page(request, *, download=None, upload=None, refusal=None, plan=None, token="", status=200):
    context = {
        "download": download or BackupDownloadForm(),
        "upload": upload or RestoreUploadForm(auto_id=UPLOAD_IDS),
        "refusal": refusal,
        "plan": plan,
        "token": token,
    }
    return render(request, TEMPLATE, context, status=status)


def backup_restore_page(request):
    return _page(request)


@require_POST
def backup_download(request):
    form = BackupDownloadForm(request.POST)
    if not form.is_valid():
        return _page(request, download=form, status=400)
    with_secrets = form.cleaned_data["include_secrets"]
    data = backup_build(
        actor=request.user.username,
        include_secrets=with_secrets,
        passphrase=form.cleaned_data["passphrase"] if with_secrets else "",
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    name = f"kws-backup-{settings.NODE_NAME}-{stamp}.json"
    response = HttpResponse(data, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


def _pending_forget(request) -> None:
    pending = request.session.pop(PENDING, None)
    if pending:
        restore_pending_discard(pending["token"])


def _preview(request, backup, *, refusal=None):
    """Plan the restore (tried and rolled back), keep the file, show what would change."""
    plan = backup_restore(backup=backup, actor=request.user.username, dry_run=True)
    _pending_forget(request)
    token, key = restore_pending_save(backup, fingerprint=plan.fingerprint)
    request.session[PENDING] = {"token": token, "key": key}
    return _page(request, plan=plan, token=token, refusal=refusal)


@require_POST
def backup_restore_preview(request):
    write_check()  # a backup or a failover: 423 before the file is read
    form = RestoreUploadForm(request.POST, request.FILES, auto_id=UPLOAD_IDS)
    if not form.is_valid():
        return _page(request, upload=form, status=400)
    try:
        backup = backup_open(
            form.cleaned_data["file"].read(), passphrase=form.cleaned_data["passphrase"]
        )
        return _preview(request, backup)
    except RestoreError as exc:
        return _page(request, upload=form, refusal=exc, status=400)


@require_POST
def backup_restore_confirm(request):
    write_check()
    pending = request.session.get(PENDING)
    if not pending or pending["token"] != request.POST.get("token", ""):
        messages.error(request, "The preview has expired: upload the file again.")
        return redirect("backup_restore")
    try:
        backup, fingerprint = restore_pending_load(pending["token"], pending["key"])
    except RestoreError as exc:
        request.session.pop(PENDING, None)
        messages.error(request, exc.message)
        return redirect("backup_restore")
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the confirmation to restore this file: nothing changed.")
        return _preview(request, backup)
    if not password_confirmed(request):
        return _preview(request, backup)
    try:
        plan = backup_restore(backup=backup, actor=request.user.username, fingerprint=fingerprint)
    except RestoreError as exc:
        if CHANGED_SINCE_PREVIEW in exc.message:
            # The new preview is shown at once: confirm it, or leave.
            return _preview(request, backup, refusal=exc)
        _pending_forget(request)
        return _page(request, refusal=exc, status=400)
    _pending_forget(request)
    if plan.changes:
        messages.success(request, f"Restored from the backup: {plan.summary()}.")
    else:
        messages.info(request, "Nothing to restore: this server already equals the file.")
    return redirect("backup_restore")


@require_POST
def backup_restore_cancel(request):
    _pending_forget(request)
    messages.info(request, "Restore cancelled: nothing changed.")
    return redirect("backup_restore")
