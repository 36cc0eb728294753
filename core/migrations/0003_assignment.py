from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [("core", "0002_own_tables")]

    operations = [
        migrations.AddField(
            model_name="nodestate", name="slot", field=models.CharField(blank=True, max_length=1)
        ),
        migrations.AddField(
            model_name="nodestate",
            name="assignment",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="nodestate",
            name="registering",
            field=models.CharField(blank=True, max_length=2),
        ),
    ]
