from django.shortcuts import redirect, render
from django.urls import reverse

from kws_admin.models import PasswordChangeRequired


def _accounts_locked() -> bool:
    """On a backup (or during a failover) accounts are the master's: they cannot change here."""
    from redundancy.locks import lock_reason

    return bool(lock_reason())


class PasswordChangeRequiredMiddleware:
    """Sends an account marked for a password change to the change form first
    (where accounts can be changed: not on a backup)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            allowed = (reverse("password_change"), reverse("logout"), "/static/")
            if (
                not request.path.startswith(allowed)
                and PasswordChangeRequired.objects.filter(user=user).exists()
                and not _accounts_locked()
            ):
                return redirect("password_change")
        return self.get_response(request)


class LockedMiddleware:
    """Answers a write refused by the configuration lock with HTTP 423 and the reason."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from redundancy.locks import Locked

        if not isinstance(exception, Locked):
            return None
        if request.htmx:
            return render(
                request, "kws_admin/partials/locked.html", {"reason": exception.reason}, status=423
            )
        return render(request, "kws_admin/locked.html", {"reason": exception.reason}, status=423)
