from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "KWS core"

    def ready(self) -> None:
        # Django loads models before ready(); what registers with the registries is
        # imported here, where Django allows it (the pattern of every app's ready()).
        from core import audit, replicated

        replicated.register()
        audit.register()
