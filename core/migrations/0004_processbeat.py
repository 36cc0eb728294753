from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [("core", "0003_assignment")]

    operations = [
        migrations.CreateModel(
            name="ProcessBeat",
            fields=[
                ("role", models.CharField(max_length=20, primary_key=True, serialize=False)),
                ("pid", models.PositiveIntegerField(default=0)),
                ("stamped_at", models.DateTimeField()),
                ("detail", models.CharField(blank=True, max_length=200)),
                ("down", models.BooleanField(default=False)),
            ],
        ),
    ]
