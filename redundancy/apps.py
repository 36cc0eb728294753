from django.apps import AppConfig


class RedundancyConfig(AppConfig):
    name = "redundancy"
