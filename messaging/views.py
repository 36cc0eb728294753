"""The GUI of the XML-RPC API: the connected applications (Status page) and a user's
handset messages (the user's page), read from the hub in the web process."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from basestations.protocol import MAX_DISPLAY
from messaging import server
from users.models import DectUser


@require_GET
def applications(request: HttpRequest) -> HttpResponse:
    try:
        found, problem = server.applications(), ""
    except (server.Unavailable, TimeoutError) as exc:
        found, problem = [], str(exc)
    context = {"applications": found, "problem": problem, "accepting": server.HUB.accepting,
               "refusal": server.HUB.refusal}  # fmt: skip
    return render(request, "messaging/partials/applications.html", context)


@require_GET
def user_messages(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(DectUser, pk=pk)
    try:
        found, problem = server.messages_of(user.extension), ""
    except (server.Unavailable, TimeoutError) as exc:
        found, problem = [], str(exc)
    context = {"user_obj": user, "recent": found, "problem": problem}
    return render(request, "messaging/partials/user_messages.html", context)


@require_POST
def user_test_message(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(DectUser, pk=pk)
    text = request.POST.get("display", "").strip() or "Test message"
    if len(text) > MAX_DISPLAY:
        messages.error(request, f"A message is at most {MAX_DISPLAY} characters: not sent.")
        return redirect("user_edit", pk=pk)
    try:
        server.test_message_send(to=user.extension, display=text,
                                 actor=request.user.get_username())  # fmt: skip
    except (server.Unavailable, TimeoutError) as exc:
        messages.error(request, f"Not sent: {exc}.")
    else:
        messages.success(request, f"Test message sent to {user.extension}: see below whether "
                         "it arrived.")  # fmt: skip
    return redirect("user_edit", pk=pk)
