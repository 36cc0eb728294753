from django.urls import include, path

from basestations import views

urlpatterns = [
    path("", views.basestation_list, name="basestation_list"),
    path("add/", views.basestation_create, name="basestation_create"),
    path("<int:pk>/", views.basestation_edit, name="basestation_edit"),
    path("<int:pk>/delete/", views.basestation_delete, name="basestation_delete"),
    path("media/add/", views.media_resource_create, name="media_resource_create"),
    path("media/<int:pk>/", views.media_resource_edit, name="media_resource_edit"),
    path("media/<int:pk>/delete/", views.media_resource_delete, name="media_resource_delete"),
    # The device API (keep-alives of base stations and media resources): basestations.api.
    path("api/", include("basestations.api_urls")),
]
