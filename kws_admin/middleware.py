from django.shortcuts import redirect
from django.urls import reverse

from kws_admin.models import PasswordChangeRequired


class PasswordChangeRequiredMiddleware:
    """Sends an account marked for a password change to the change form first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            allowed = (reverse("password_change"), reverse("logout"), "/static/")
            if (
                not request.path.startswith(allowed)
                and PasswordChangeRequired.objects.filter(user=user).exists()
            ):
                return redirect("password_change")
        return self.get_response(request)
