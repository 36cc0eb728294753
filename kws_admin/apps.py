from django.apps import AppConfig


class KwsAdminConfig(AppConfig):
    name = "kws_admin"
    verbose_name = "KWS Admin"
