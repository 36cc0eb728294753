# The Users list's search finds a text anywhere in a display name or SIP user
# (icontains, which Django writes on PostgreSQL as UPPER("col"::text) LIKE UPPER('%x%')),
# and extensions and IPEIs by their start (the unique columns' _like indexes serve those).
# On PostgreSQL trigram GIN indexes on exactly those expressions serve the infix search.
# pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner, the kws role of
# deploy/ensure-services.sh, may create it. SQLite has no index for an infix LIKE and
# scans (a few ms at 10,000 users). The indexes stay out of the models' state: SQLite
# rebuilds a table's Meta.indexes whenever it remakes it.

from django.db import migrations

INDEXES = {
    "users_dectuser_name_trgm": "display_name",
    "users_dectuser_sipuser_trgm": "sip_username",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in INDEXES.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "users_dectuser" '
            f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):

    dependencies = [("users", "0006_pbxlink_rate_pbxlink_rate_changed_at_and_more")]

    operations = [migrations.RunPython(create, drop)]
