from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import api as accounts_api
from accounts.views import LoginView, PasswordChangeView
from kws_admin import views
from redundancy import api as redundancy_api
from redundancy import urls as redundancy_urls

urlpatterns = [
    path("", include("redundancy.urls")),
    path("users/", include("users.urls")),
    path("basestations/", include("basestations.urls")),
    path("licenses/", include("licensing.urls")),
    path("messaging/", include("messaging.urls")),
    # Status > Statistics
    path("statistics/", include(redundancy_urls.statistics_patterns)),
    # Configuration > SIP
    path("configuration/sip/", include("users.sip_urls")),
    # Configuration > Corporate phonebook
    path("configuration/phonebook/", include("phonebook.urls")),
    # Administration > Backup and restore
    path("administration/backup/", include("kws_admin.backup_urls")),
    # Administration > Administrators
    path("administration/administrators/", include("accounts.urls")),
    # Administration > Audit
    path("administration/audit/", include("kws_admin.audit_urls")),
    path("partials/node-header/", views.node_header, name="node_header"),
    # Only in the demo: the backup's Status page fails the master and brings it back.
    path("demo/<str:action>/", views.demo_action, name="demo_action"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", PasswordChangeView.as_view(), name="password_change"),
    # The peer API between the two servers (signed; no login, no CSRF).
    path("api/peer/", include(redundancy_api.urlpatterns + accounts_api.urlpatterns)),
]
