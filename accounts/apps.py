from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Administrator accounts"

    def ready(self) -> None:
        # Admin accounts are replicated configuration (entity "admin_account"); imported
        # here because Django allows model imports only once the apps are ready.
        from accounts import replication

        replication.register()
