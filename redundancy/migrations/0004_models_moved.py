# These models are core's now (core/migrations/0001_initial.py took them over); only
# Django's state forgets them here, their tables and rows stay.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("redundancy", "0003_refusal"),
        ("core", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name=name)
                for name in ("Event", "NodeState", "SeenNonce", "Refusal", "ChangeLogHead",
                             "ChangeLogEntry")  # fmt: skip
            ],
        ),
    ]
