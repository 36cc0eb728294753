from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core import demo_control


def node_header(request):
    """The header fragment, polled by htmx so mode, phase and lock stay current."""
    return render(request, "kws_admin/partials/node_header.html")


def placeholder(request, *, title: str, text: str):
    return render(request, "kws_admin/placeholder.html", {"title": title, "text": text})


@require_POST
def demo_action(request, action: str):
    """Only in the demo, on the backup's Status page: ask the demo launcher to kill the
    master's processes (as a crash would) or start them again, and say what it did."""
    folder = settings.DEMO_CONTROL_DIR
    if not folder or action not in demo_control.ACTIONS:
        raise Http404("not a demo action")
    try:
        ok, message = demo_control.request_send(Path(folder), action, timeout=90.0)
    except demo_control.ControlError as exc:
        messages.error(request, f"The demo did not do it: {exc}.")
    else:
        (messages.success if ok else messages.error)(request, message)
    return redirect("status")
