from django.apps import AppConfig


class AccountsCommandsConfig(AppConfig):
    """Only management commands: listed before django.contrib.auth so that its own
    createsuperuser and changepassword are these."""

    name = "accounts.commands"
    label = "accounts_commands"
    verbose_name = "Administrator account commands"
