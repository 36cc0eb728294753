from django.urls import include, path

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
    # The device API (keep-alives of base stations and media resources): basestations.api.
    path("api/", include("basestations.api_urls")),
]
