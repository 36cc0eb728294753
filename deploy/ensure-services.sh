#!/usr/bin/env bash
# PostgreSQL (with a `kws` role), Redis, Chromium, Kamailio (the PBX) and slapd (LDAP). Installs what is missing
# from Debian's packages (as root), starts what is not running. Safe to re-run.
set -euo pipefail

PG_PORT=${KWS_TEST_PG_PORT:-5432}
REDIS_PORT=${KWS_TEST_REDIS_PORT:-6379}

say() { echo "ensure-services: $*"; }

missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v psql >/dev/null || missing+=(postgresql-client)
[ -x /usr/sbin/kamailio ] || missing+=(kamailio)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/db_sqlite.so ] || ls /usr/lib/*/kamailio/modules/db_sqlite.so >/dev/null 2>&1 || missing+=(kamailio-sqlite-modules)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
[ -x /usr/sbin/slapd ] || missing+=(slapd)  # the corporate phonebook's LDAP directory
command -v ldapsearch >/dev/null || missing+=(ldap-utils)
command -v sipp >/dev/null || missing+=(sip-tester)  # bench/reregister.py compares with SIPp

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) and re-run"
    exit 1
  fi
  say "installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }
if ! pg_ready; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    say "creating PostgreSQL $version cluster main"
    pg_createcluster "$version" main >/dev/null
  fi
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 50); do pg_ready && break; sleep 0.2; done
  pg_ready || { say "PostgreSQL did not start"; exit 1; }
fi

# The tests connect as `kws` with a password, which works under trust and
# under scram/md5 (a fresh Debian install) alike.
if ! PGPASSWORD=kws psql -q -h 127.0.0.1 -p "$PG_PORT" -U kws -d postgres -c 'select 1' >/dev/null 2>&1; then
  say "creating PostgreSQL role kws"
  runuser -u postgres -- psql -q -p "$PG_PORT" -v ON_ERROR_STOP=1 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kws') THEN
    CREATE ROLE kws LOGIN CREATEDB PASSWORD 'kws';
  ELSE
    ALTER ROLE kws LOGIN CREATEDB PASSWORD 'kws';
  END IF;
END $$;
SQL
fi
if ! PGPASSWORD=kws psql -q -h 127.0.0.1 -p "$PG_PORT" -U kws -d kws -c 'select 1' >/dev/null 2>&1; then
  runuser -u postgres -- createdb -p "$PG_PORT" -O kws kws
fi

if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  say "starting Redis on port $REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /tmp --logfile "/tmp/redis-$REDIS_PORT.log"
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
say "PostgreSQL on $PG_PORT, Redis on $REDIS_PORT, Chromium and Kamailio installed: ready"
