from django.urls import path

from kws_admin.views import placeholder

urlpatterns = [
    path(
        "",
        placeholder,
        {
            "title": "Licenses",
            "text": "This server's ARI code, the installed license codes, a form to enter a new code, and the order request for the redundancy licenses 14075250 (master) and 14075260 (backup).",
        },
        name="license_list",
    ),
]
