"""Configuration > SIP (included under ``configuration/sip/`` by kws_admin/urls.py)."""

from django.urls import path

from users import views

urlpatterns = [
    path("", views.sip_settings, name="sip_settings"),
]
