from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts.access import OPERATOR_REFUSAL
from accounts.forms import AdministratorAddForm, AdministratorChangeForm
from accounts.models import ADMINISTRATOR, OPERATOR, PasswordChangeRequired, account_role
from accounts.services import (
    AccountError,
    admin_account_active_set,
    admin_account_add,
    admin_account_delete,
    admin_account_role_set,
    admin_accounts_route,
    admin_password_reset,
    admin_password_set,
)
from core.locks import Locked
from core.reauth import password_confirmed
from core.selectors import config_read, peer_name


class LoginView(auth_views.LoginView):
    """The login page; on a backup it says whose accounts sign in here: the master's,
    which replace the backup's own when it joins."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if config_read()["redundancy.mode"] == "slave":
            context["backup_of"] = peer_name() or "its master"
        return context


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "registration/password_change.html"
    success_url = reverse_lazy("status")

    def form_valid(self, form):
        # Admin accounts are replicated: the service writes the change with its
        # change-log entry (or forwards it to the master from a joined backup).
        admin_password_set(
            user=form.user,
            password=form.cleaned_data["new_password1"],
            actor=self.request.user.get_username(),
        )
        update_session_auth_hash(self.request, form.user)
        return HttpResponseRedirect(self.get_success_url())

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["required"] = PasswordChangeRequired.objects.filter(user=self.request.user).exists()
        return context


# --- Administration > Administrators ---------------------------------------------------


def _read_only_reason(request) -> str:
    """Why this page is read-only for this administrator here, or "" when it is not."""
    if account_role(request.user) != ADMINISTRATOR:
        return OPERATOR_REFUSAL
    try:
        admin_accounts_route()
    except Locked as exc:
        return exc.reason
    return ""


def _page(request, *, add=None, change=None, status=200):
    User = get_user_model()
    must_change = set(PasswordChangeRequired.objects.values_list("user_id", flat=True))
    accounts = [
        {
            "username": user.get_username(),
            "role": account_role(user),
            "active": user.is_active,
            "must_change": user.pk in must_change,
            "last_login": user.last_login,
            "you": user.pk == request.user.pk,
        }
        for user in User.objects.order_by("username")
    ]
    context = {
        "accounts": accounts,
        "add": add or AdministratorAddForm(auto_id="add_%s"),
        "change": change or AdministratorChangeForm(auto_id="change_%s"),
        "read_only": _read_only_reason(request),
    }
    return render(request, "accounts/administrators.html", context, status=status)


@require_GET
def administrator_list(request):
    return _page(request)


def _refused(form, exc: AccountError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


@require_POST
def administrator_add(request):
    admin_accounts_route()  # Locked (423) before the password is even checked
    form = AdministratorAddForm(request.POST, auto_id="add_%s")
    if not form.is_valid():
        return _page(request, add=form, status=400)
    if not password_confirmed(request):
        return _page(request, add=form, status=400)
    data = form.cleaned_data
    try:
        admin_account_add(
            username=data["username"],
            password=data["new_password"],
            role=data["role"],
            actor=request.user.get_username(),
        )
    except AccountError as exc:
        _refused(form, exc)
        return _page(request, add=form, status=400)
    messages.success(
        request, f"Account {data['username']} added: its password is changed at its first login."
    )
    return redirect("administrator_list")


@require_POST
def administrator_change(request):
    admin_accounts_route()
    form = AdministratorChangeForm(request.POST, auto_id="change_%s")
    if not form.is_valid():
        return _page(request, change=form, status=400)
    if not password_confirmed(request):
        return _page(request, change=form, status=400)
    data, actor = form.cleaned_data, request.user.get_username()
    username, action = data["username"], data["action"]
    try:
        if action in ("disable", "enable"):
            admin_account_active_set(username=username, active=action == "enable", actor=actor)
            done = f"Account {username} {action}d."
        elif action in (ADMINISTRATOR, OPERATOR):
            admin_account_role_set(username=username, role=action, actor=actor)
            done = f"Account {username} is now {action}."
        elif action == "reset":
            admin_password_reset(username=username, password=data["new_password"], actor=actor)
            done = f"Password of {username} reset: it is changed at the next login."
        else:
            admin_account_delete(username=username, actor=actor)
            done = f"Account {username} deleted."
    except AccountError as exc:
        _refused(form, exc)
        return _page(request, change=form, status=400)
    if username == actor and action == "reset":
        # The administrator's own session would end with the old password hash.
        update_session_auth_hash(request, get_user_model().objects.get(username=username))
    messages.success(request, done)
    return redirect("administrator_list")
