from django.conf import settings
from django.db import models


class ConfigValue(models.Model):
    """One configuration key of this node, stored in its canonical text form."""

    key = models.CharField(max_length=100, primary_key=True)
    value = models.TextField(blank=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key


class PasswordChangeRequired(models.Model):
    """Marks an account whose password must be changed before anything else."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)

    def __str__(self) -> str:
        return f"{self.user} must change the password"
