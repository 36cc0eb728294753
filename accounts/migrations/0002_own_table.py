from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("kws_admin", "0002_models_moved"),
    ]

    operations = [migrations.AlterModelTable(name="passwordchangerequired", table=None)]
