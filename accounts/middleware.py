from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.access import OPERATOR_REFUSAL, write_allowed
from accounts.models import password_change_required
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
                and password_change_required(user)
                and write_permission(Scope.ACCOUNT).allowed
            ):
                return redirect("password_change")
        return self.get_response(request)


class OperatorMiddleware:
    """Refuses with 403 every write of an operator account but the few
    ``accounts.access.OPERATOR_WRITES`` allows, whatever page it is aimed at: the pages
    only hide their buttons, this is the rule."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        match = request.resolver_match
        if write_allowed(user, request.method, match.url_name if match else None):
            return None
        template = "accounts/partials/refused.html" if request.htmx else "accounts/refused.html"
        return render(request, template, {"reason": OPERATOR_REFUSAL}, status=403)
