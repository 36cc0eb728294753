from django.apps import AppConfig

from core.config import key_register
from licensing import config


class LicensingConfig(AppConfig):
    name = "licensing"

    def ready(self) -> None:
        key_register(*config.KEYS)
        # Core's configuration service knows nothing of licenses; the licensing rules
        # (a node type needs its redundancy license, the ARI is fixed once a code is
        # bound to it) reach every writer of the configuration as registered checks.
        # Imported here: Django allows model imports only once the apps are ready.
        from core.services import config_check_register
        from licensing import services

        config_check_register(services.ROLE_LICENSE_CHECK, services.role_license_check)
        config_check_register(services.ARI_BOUND_CHECK, services.ari_bound_check)
        config_check_register(services.SYSTEM_ARI_FIXED_CHECK, services.system_ari_fixed_check)
