from django.db import models


class PhonebookEntry(models.Model):
    """An entry of the CSV phonebook (a single server only; with redundancy: LDAP)."""

    name = models.CharField(max_length=100)
    number = models.CharField(max_length=32)

    class Meta:
        ordering = ("name", "number")
        indexes = (models.Index(fields=("number",)),)

    def __str__(self) -> str:
        return f"{self.name} {self.number}"
