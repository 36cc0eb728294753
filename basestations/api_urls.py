from django.urls import path

from basestations import api

# The device API (signed keep-alives, unsigned probe; no login, no CSRF).
urlpatterns = [
    path("keepalive", api.keepalive, name="device_keepalive"),
    path("probe", api.probe, name="device_probe"),
]
