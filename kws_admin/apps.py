from django.apps import AppConfig


class KwsAdminConfig(AppConfig):
    """The project itself as an app: its installation command (kwsinit), its templates'
    middleware and context processors; it has no models of its own any more."""

    name = "kws_admin"
    verbose_name = "KWS Admin"
