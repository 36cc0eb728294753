from django.apps import AppConfig

from core.config import key_register
from users import config


class UsersConfig(AppConfig):
    name = "users"

    def ready(self) -> None:
        key_register(*config.KEYS)
        # Imported here: Django allows model imports only once the apps are ready.
        from users import replication

        replication.register()
