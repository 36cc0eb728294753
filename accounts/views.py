from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.urls import reverse_lazy

from accounts.models import PasswordChangeRequired
from accounts.services import admin_password_set
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
