from django.urls import path

from redundancy import api, replication_api

urlpatterns = [
    path("heartbeat", api.heartbeat, name="peer_heartbeat"),
    path("switchover", api.switchover, name="peer_switchover"),
    *replication_api.urlpatterns,
]
