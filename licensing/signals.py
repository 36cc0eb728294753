"""What the licensing app tells the apps above it (they connect in their ``ready``)."""

from django.dispatch import Signal

# Sent inside the transaction of an explicit change of the system ARI, with ``old``,
# ``new`` and ``actor``: every handset subscribed to ``old`` must subscribe again.
system_ari_changed = Signal()
