from django.conf import settings
from django.db import models

# The two roles of an account. The role is the account's ``is_superuser`` flag, so it is
# replicated, backed up and restored with the account as it always was (accounts made
# before roles existed were all superusers: they are administrators).
ADMINISTRATOR, OPERATOR = "administrator", "operator"
ROLES = {
    ADMINISTRATOR: "Administrator: changes everything",
    OPERATOR: "Operator: reads every page, sends test messages, changes his own password",
}


def account_role(user) -> str:
    """The role of an account: administrator or operator."""
    return ADMINISTRATOR if user.is_superuser else OPERATOR


class PasswordChangeRequired(models.Model):
    """Marks an account whose password must be changed before anything else."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)

    def __str__(self) -> str:
        return f"{self.user} must change the password"


def password_change_required(user) -> bool:
    """Whether the account must change its password before anything else (read with the
    account by ``accounts.backends.AccountBackend``, else asked here)."""
    try:
        user.passwordchangerequired  # noqa: B018 (the reverse one-to-one raises if unmarked)
    except PasswordChangeRequired.DoesNotExist:
        return False
    return True
