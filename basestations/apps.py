from django.apps import AppConfig

from basestations import config
from core.config import key_register


class BasestationsConfig(AppConfig):
    name = "basestations"
    verbose_name = "Base stations"

    def ready(self) -> None:
        key_register(*config.KEYS)
        # Base stations and media resources are replicated configuration (entity "device");
        # imported here: Django allows model imports only once the apps are ready.
        from basestations import replication

        replication.register()
