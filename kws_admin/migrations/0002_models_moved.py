# ConfigValue is core's now and PasswordChangeRequired the accounts app's (their
# migrations 0001 took them over); only Django's state forgets them here.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("kws_admin", "0001_initial"),
        ("core", "0001_initial"),
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name="ConfigValue"),
                migrations.DeleteModel(name="PasswordChangeRequired"),
            ],
        ),
    ]
