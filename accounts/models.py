from django.conf import settings
from django.db import models


class PasswordChangeRequired(models.Model):
    """Marks an account whose password must be changed before anything else."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)

    def __str__(self) -> str:
        return f"{self.user} must change the password"
