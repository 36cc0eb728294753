from django.shortcuts import redirect
from django.urls import reverse

from accounts.models import PasswordChangeRequired
from core.locks import write_permission
from core.rules import Scope


class PasswordChangeRequiredMiddleware:
    """Sends an account marked for a password change to the change form first, wherever
    the lock rule lets accounts change (on a joined backup the change goes through the
    master); where nothing may change (a backup in failover) the mark waits."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            allowed = (reverse("password_change"), reverse("logout"), "/static/")
            if (
                not request.path.startswith(allowed)
                and PasswordChangeRequired.objects.filter(user=user).exists()
                and write_permission(Scope.ACCOUNT).allowed
            ):
                return redirect("password_change")
        return self.get_response(request)
