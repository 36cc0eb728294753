from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import api as accounts_api
from accounts.views import LoginView, PasswordChangeView
from kws_admin import views
from redundancy import api as redundancy_api

urlpatterns = [
    path("", include("redundancy.urls")),
    path("users/", include("users.urls")),
    path("basestations/", include("basestations.urls")),
    path("licenses/", include("licensing.urls")),
    path("messaging/", include("messaging.urls")),
    path("partials/node-header/", views.node_header, name="node_header"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", PasswordChangeView.as_view(), name="password_change"),
    # The peer API between the two servers (signed; no login, no CSRF).
    path("api/peer/", include(redundancy_api.urlpatterns + accounts_api.urlpatterns)),
]
