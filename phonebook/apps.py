from django.apps import AppConfig

from core.config import key_register
from phonebook import config


class PhonebookConfig(AppConfig):
    name = "phonebook"
    verbose_name = "Corporate phonebook"

    def ready(self) -> None:
        key_register(*config.KEYS)
        # The seed's rule, both ways (a CSV phonebook with redundancy, redundancy with a
        # CSV phonebook) and what an LDAP source needs, for every writer of the
        # configuration: the GUI, kwsconfig set and kwsconfig import.
        # Imported here: Django allows model imports only once the apps are ready.
        from core.services import config_check_register
        from phonebook import services

        config_check_register(services.PHONEBOOK_CHECK, services.phonebook_config_check)
