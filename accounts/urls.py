from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.administrator_list, name="administrator_list"),
    path("add/", views.administrator_add, name="administrator_add"),
    path("change/", views.administrator_change, name="administrator_change"),
]
