from django.urls import path

from licensing import views

urlpatterns = [
    path("", views.license_list, name="license_list"),
    path("install/", views.license_install, name="license_install"),
    path("system-ari/", views.system_ari_change, name="system_ari_change"),
    path("order/", views.license_order, name="license_order"),
    path("order/download/", views.license_order_download, name="license_order_download"),
]
