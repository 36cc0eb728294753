# The models of core were first written in the apps kws_admin and redundancy. This
# migration takes them over in Django's state only (their tables exist already, from
# those apps' migrations, on a new database and on an upgraded one alike); 0002 renames
# the tables. The dependencies on the old apps' migrations are Django's, not imports.

import core.models
from django.db import migrations, models


def _moved(name, fields, table, **options):
    return migrations.CreateModel(name=name, fields=fields, options={"db_table": table, **options})


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("kws_admin", "0001_initial"),
        ("redundancy", "0003_refusal"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                _moved(
                    "ConfigValue",
                    [
                        ("key", models.CharField(max_length=100, primary_key=True, serialize=False)),
                        ("value", models.TextField(blank=True)),
                        ("updated", models.DateTimeField(auto_now=True)),
                    ],
                    "kws_admin_configvalue",
                ),
                _moved(
                    "Event",
                    [
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("created", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("kind", models.CharField(db_index=True, max_length=40)),
                        ("severity", models.CharField(choices=[("info", "info"), ("warning", "warning"), ("error", "error")], default="info", max_length=10)),
                        ("message", models.TextField()),
                        ("actor", models.CharField(blank=True, max_length=150)),
                    ],
                    "redundancy_event",
                    ordering=["-created", "-id"],
                ),
                _moved(
                    "NodeState",
                    [
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("phase", models.CharField(choices=[("single", "single"), ("normal", "normal"), ("peer_lost", "peer lost"), ("failover", "failover"), ("rejected", "rejected")], default="single", max_length=20)),
                        ("locked", models.BooleanField(default=False)),
                        ("lock_reason", models.CharField(blank=True, max_length=200)),
                        ("reason", models.CharField(blank=True, max_length=300)),
                        ("last_tick", models.DateTimeField(blank=True, null=True)),
                        ("peer_seen_at", models.DateTimeField(blank=True, null=True)),
                        ("peer_status", models.JSONField(blank=True, default=dict)),
                        ("engine", models.JSONField(blank=True, default=dict)),
                        ("updated", models.DateTimeField(auto_now=True)),
                    ],
                    "redundancy_nodestate",
                ),
                _moved(
                    "SeenNonce",
                    [
                        ("nonce", models.CharField(max_length=64, primary_key=True, serialize=False)),
                        ("seen_at", models.DateTimeField(db_index=True)),
                    ],
                    "redundancy_seennonce",
                ),
                _moved(
                    "Refusal",
                    [
                        ("key", models.CharField(max_length=200, primary_key=True, serialize=False)),
                        ("kind", models.CharField(max_length=40)),
                        ("message", models.TextField()),
                        ("first_at", models.DateTimeField()),
                        ("last_at", models.DateTimeField(db_index=True)),
                        ("count", models.PositiveIntegerField(default=1)),
                    ],
                    "redundancy_refusal",
                ),
                _moved(
                    "ChangeLogHead",
                    [
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("log_id", models.CharField(default=core.models.new_log_id, max_length=36)),
                        ("seq", models.BigIntegerField(default=0)),
                    ],
                    "redundancy_changeloghead",
                ),
                _moved(
                    "ChangeLogEntry",
                    [
                        ("seq", models.BigIntegerField(primary_key=True, serialize=False)),
                        ("created", models.DateTimeField()),
                        ("entity", models.CharField(max_length=40)),
                        ("op", models.CharField(max_length=20)),
                        ("key", models.CharField(max_length=200)),
                        ("data", models.JSONField(blank=True, default=dict)),
                    ],
                    "redundancy_changelogentry",
                    ordering=["seq"],
                ),
            ],
        ),
    ]
