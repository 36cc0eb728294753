# The NODE column was stored per user and rewritten at every rebalance and takeover; a
# user now has a home slot, chosen once, and the pair's assignment says who handles it.
# An upgraded pair keeps its split: NODE M becomes home A (the master's slot), S home B.

from django.db import migrations, models


def node_to_home(apps, schema_editor):
    DectUser = apps.get_model("users", "DectUser")
    DectUser.objects.filter(node="S").update(home="B")
    DectUser.objects.exclude(node="S").update(home="A")


def home_to_node(apps, schema_editor):
    DectUser = apps.get_model("users", "DectUser")
    DectUser.objects.filter(home="B").update(node="S")
    DectUser.objects.exclude(home="B").update(node="M")


class Migration(migrations.Migration):

    dependencies = [("users", "0003_peer_registration")]

    operations = [
        migrations.AddField(
            model_name="dectuser",
            name="home",
            field=models.CharField(choices=[("A", "A"), ("B", "B")], default="A", max_length=1),
        ),
        migrations.RunPython(node_to_home, home_to_node),
        migrations.RemoveField(model_name="dectuser", name="node"),
    ]
