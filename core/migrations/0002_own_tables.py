# The tables take core's names once the old apps have let go of the models (their
# migrations below remove them from Django's state, nothing from the database).

from django.db import migrations, models

MOVED = ["configvalue", "event", "nodestate", "seennonce", "refusal", "changeloghead",
         "changelogentry"]  # fmt: skip


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0001_initial"),
        ("kws_admin", "0002_models_moved"),
        ("redundancy", "0004_models_moved"),
    ]

    operations = [
        *[migrations.AlterModelTable(name=name, table=None) for name in MOVED],
        migrations.AddField(
            model_name="nodestate",
            name="switchover_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
