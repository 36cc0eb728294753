from django.apps import AppConfig


class RedundancyConfig(AppConfig):
    name = "redundancy"

    def ready(self) -> None:
        # A save waits for the backup's acknowledgement: the nudge runs as a commit hook
        # of core's change log. Imported here because Django allows model imports only
        # once apps are ready.
        from core.changelog import changelog_commit_hook_add
        from redundancy import durability

        changelog_commit_hook_add(durability.after_commit)
