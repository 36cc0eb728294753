from django.apps import AppConfig

from core.config import key_register
from users import config


class UsersConfig(AppConfig):
    name = "users"

    def ready(self) -> None:
        key_register(*config.KEYS)
        # Imported here: Django allows model imports only once the apps are ready.
        from licensing.signals import system_ari_changed
        from users import replication, services

        replication.register()
        # Handsets subscribed to the old system ARI must subscribe again.
        system_ari_changed.connect(services.subscriptions_reset, dispatch_uid="users")
