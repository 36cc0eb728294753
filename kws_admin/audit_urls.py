from django.urls import path

from kws_admin import audit_views

urlpatterns = [
    path("", audit_views.audit_list, name="audit_list"),
]
