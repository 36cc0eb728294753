from django.apps import AppConfig


class BasestationsConfig(AppConfig):
    name = "basestations"
