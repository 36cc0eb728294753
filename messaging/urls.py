from django.urls import path

from messaging import views

urlpatterns = [
    path("applications/", views.applications, name="messaging_applications"),
    path("users/<int:pk>/", views.user_messages, name="messaging_user_messages"),
    path("users/<int:pk>/test/", views.user_test_message, name="messaging_user_test"),
]
