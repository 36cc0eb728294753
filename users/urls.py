from django.urls import path

from users import views

urlpatterns = [
    path("", views.user_list, name="user_list"),
    path("add/", views.user_create, name="user_create"),
    path("<int:pk>/", views.user_edit, name="user_edit"),
    path("<int:pk>/delete/", views.user_delete, name="user_delete"),
    path("export.csv", views.user_export, name="user_export"),
    path("import/", views.user_import, name="user_import"),
]
