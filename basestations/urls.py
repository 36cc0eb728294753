from django.urls import path

from kws_admin.views import placeholder

urlpatterns = [
    path(
        "",
        placeholder,
        {
            "title": "Base stations",
            "text": "The base stations (RFPs) and media resources: their firmware, state and the server each is attached to.",
        },
        name="basestation_list",
    ),
]
