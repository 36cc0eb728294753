"""Asking the signed-in administrator for the password again before a destructive action."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import authenticate
from django.http import HttpRequest


def password_confirmed(request: HttpRequest) -> bool:
    """The administrator typed the password again (field ``password``): checked like a
    login, so wrong guesses count towards the lockout. Says so in a message when not."""
    password = request.POST.get("password", "")
    user = authenticate(request, username=request.user.get_username(), password=password)
    if user is not None and user.pk == request.user.pk:
        return True
    messages.error(request, "Your password was not right: nothing changed.")
    return False
