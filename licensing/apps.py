from django.apps import AppConfig
from django.db.models.signals import pre_save


class LicensingConfig(AppConfig):
    name = "licensing"

    def ready(self) -> None:
        # The configuration services are shared and know nothing of licenses; the
        # rule "the ARI is fixed once a code is bound to it" must still stop every
        # writer of system.ari (kwsconfig set, import, forms), so it guards the row.
        from kws_admin.models import ConfigValue
        from licensing.services import system_ari_guard

        pre_save.connect(system_ari_guard, sender=ConfigValue, dispatch_uid="licensing.system_ari")
