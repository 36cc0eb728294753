# The Users list's search finds a text anywhere in a display name or SIP user
# (icontains, which Django writes on PostgreSQL as UPPER("col"::text) LIKE UPPER('%x%')),
# and extensions and IPEIs by their start (the unique columns' _like indexes serve those).
# On PostgreSQL trigram GIN indexes on exactly those expressions serve the infix search.
# pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner, the kws role of
# deploy/ensure-services.sh, may create it. SQLite has no index for an infix LIKE and
# scans (a few ms at 10,000 users). The indexes stay out of the models' state: SQLite
# rebuilds a table's Meta.indexes whenever it remakes it. A role that may not create the
# extension gets no indexes (a warning), not a failed upgrade.

import logging

from django.db import DatabaseError, migrations, transaction

logger = logging.getLogger(__name__)

INDEXES = {
    "users_dectuser_name_trgm": "display_name",
    "users_dectuser_sipuser_trgm": "sip_username",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):  # a savepoint
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as exc:
        # A role that may not create extensions: the search works without the indexes,
        # only by scanning. The upgrade must not fail for it.
        logger.warning("no trigram indexes for the Users search (pg_trgm: %s)", exc)
        return
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
