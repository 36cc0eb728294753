from django.urls import path

from phonebook import views

urlpatterns = [
    path("", views.phonebook_settings, name="phonebook_settings"),
    path("test/", views.phonebook_test, name="phonebook_test"),
    path("search/", views.phonebook_search, name="phonebook_search"),
    path("csv/", views.phonebook_csv_upload, name="phonebook_csv_upload"),
]
