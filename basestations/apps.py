from django.apps import AppConfig


class BasestationsConfig(AppConfig):
    name = "basestations"
    verbose_name = "Base stations"

    def ready(self) -> None:
        # Base stations and media resources are replicated configuration (entity "device").
        from basestations import replication

        replication.register()
