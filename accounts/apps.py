from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Administrator accounts"

    def ready(self) -> None:
        # Admin accounts are replicated configuration (entity "admin_account"); imported
        # here because Django allows model imports only once the apps are ready.
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in

        from accounts import replication, signals

        replication.register()
        user_locked_out.connect(signals.lockout_recorded, dispatch_uid="accounts.lockout")
        user_logged_in.connect(signals.login_succeeded, dispatch_uid="accounts.login")
