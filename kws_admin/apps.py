from django.apps import AppConfig


class KwsAdminConfig(AppConfig):
    name = "kws_admin"
    verbose_name = "KWS Admin"

    def ready(self) -> None:
        from kws_admin import replicated

        replicated.register()
