from django.urls import path

from redundancy import views

urlpatterns = [
    path("", views.status, name="status"),
    path("configuration/redundancy/", views.redundancy_settings, name="redundancy_settings"),
    path(
        "configuration/redundancy/reset-uuid/",
        views.database_uuid_reset,
        name="database_uuid_reset",
    ),
    path("configuration/redundancy/promote/", views.backup_promote, name="backup_promote"),
    path("configuration/redundancy/switchover/", views.switchover, name="switchover"),
    path("events/", views.event_list, name="event_list"),
]

# Status > Statistics (included by kws_admin.urls under statistics/).
statistics_patterns = [
    path("", views.statistics_page, name="statistics"),
    path("reset/", views.statistics_reset, name="statistics_reset"),
    path("peer-chart/", views.statistics_peer_chart, name="statistics_peer_chart"),
]
