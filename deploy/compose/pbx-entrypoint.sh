#!/bin/sh
# Create the credentials database on first start, then run Kamailio in the foreground.
#
# Credentials: rows (username, domain, password) of the `subscriber` table, read on
# every REGISTER, so they can be added while Kamailio runs, e.g.
#   docker compose exec pbx sqlite3 /var/lib/kamailio/kamailio.sqlite \
#     "insert into subscriber(username, domain, password) values('1001', 'pbx', 'secret')"
# Optionally, PBX_SUBSCRIBERS names a CSV file (username,domain,password, no header)
# loaded at every start (existing usernames are replaced).
set -eu

DB=${PBX_DB:-/var/lib/kamailio/kamailio.sqlite}
CFG=${PBX_CFG:-/etc/kamailio/kamailio.cfg}
RUN=${PBX_RUN:-/var/run/kamailio}
SCHEMA=/usr/share/kamailio/db_sqlite

if [ ! -s "$DB" ]; then
    echo "pbx: creating $DB"
    sqlite3 "$DB" < "$SCHEMA/standard-create.sql"
    sqlite3 "$DB" < "$SCHEMA/auth_db-create.sql"
fi

if [ -n "${PBX_SUBSCRIBERS:-}" ] && [ -f "$PBX_SUBSCRIBERS" ]; then
    echo "pbx: loading subscribers from $PBX_SUBSCRIBERS"
    sqlite3 "$DB" <<SQL
DROP TABLE IF EXISTS incoming;
CREATE TABLE incoming(username TEXT, domain TEXT, password TEXT);
.import --csv '$PBX_SUBSCRIBERS' incoming
DELETE FROM subscriber WHERE username IN (SELECT username FROM incoming);
INSERT INTO subscriber(username, domain, password) SELECT username, domain, password FROM incoming;
DROP TABLE incoming;
SQL
fi

exec kamailio -DD -E -f "$CFG" -Y "$RUN" \
    -m "${PBX_SHM_MB:-128}" -M "${PBX_PKG_MB:-16}" \
    -A "SIP_ADDR=${PBX_SIP_ADDR:-0.0.0.0}" -A "SIP_PORT=${PBX_SIP_PORT:-5060}" \
    -A "DBURL=\"sqlite://$DB\"" "$@"
