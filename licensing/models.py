from django.db import models

from licensing import products


class License(models.Model):
    """One license code installed on this server.

    Node-local, never replicated: every code is bound to the ARI of the server
    it was issued for, so each server of a pair keeps its own. The fields are
    what the genuine code said when it was installed (``code`` keeps the text).
    """

    code = models.TextField(unique=True)
    serial = models.BigIntegerField(unique=True)
    ari = models.CharField(max_length=8)
    product = models.PositiveIntegerField()
    users = models.PositiveIntegerField(default=0)
    features = models.JSONField(default=list, blank=True)
    issued = models.DateField()
    installed = models.DateTimeField(auto_now_add=True)
    installed_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["installed", "id"]

    def __str__(self) -> str:
        return f"{products.product_label(self.product)} serial {self.serial_text}"

    @property
    def serial_text(self) -> str:
        return f"{self.serial:08X}"
