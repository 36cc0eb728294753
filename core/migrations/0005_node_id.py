import uuid

from django.db import migrations, models

import core.models


def ids(apps, schema_editor):
    # One row; AddField gave every existing row the same default: make it its own.
    NodeState = apps.get_model("core", "NodeState")
    for state in NodeState.objects.all():
        state.node_id = str(uuid.uuid4())
        state.save(update_fields=["node_id"])


class Migration(migrations.Migration):

    dependencies = [("core", "0004_processbeat")]

    operations = [
        migrations.AddField(
            model_name="nodestate",
            name="node_id",
            field=models.CharField(default=core.models.new_log_id, max_length=36),
        ),
        migrations.RunPython(ids, migrations.RunPython.noop),
    ]
