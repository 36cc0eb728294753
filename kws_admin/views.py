from django.contrib.auth import views as auth_views
from django.shortcuts import render
from django.urls import reverse_lazy

from kws_admin.models import PasswordChangeRequired


def node_header(request):
    """The header fragment, polled by htmx so mode, phase and lock stay current."""
    return render(request, "kws_admin/partials/node_header.html")


def placeholder(request, *, title: str, text: str):
    return render(request, "kws_admin/placeholder.html", {"title": title, "text": text})


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "registration/password_change.html"
    success_url = reverse_lazy("status")

    def form_valid(self, form):
        # Admin accounts are replicated: the service writes the change with its
        # change-log entry (or forwards it to the master from a joined backup).
        from django.contrib.auth import update_session_auth_hash
        from django.http import HttpResponseRedirect

        from redundancy.replication import admin_password_set

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
