#!/usr/bin/env bash
# Restore a dump made by deploy/backup.sh into an EMPTY database:
#   deploy/restore.sh /var/backups/kamen/kamen-20260101-041000.dump postgresql://kamen:…@127.0.0.1/kamen_restored
# Stop the web, worker and cron units first when restoring over the live database name.
set -euo pipefail
dump="${1:?usage: restore.sh DUMP DATABASE_URL}"
url="${2:?usage: restore.sh DUMP DATABASE_URL}"
url="${url/postgresql+psycopg:/postgresql:}"
pg_restore --no-owner --exit-on-error --single-transaction --dbname="$url" "$dump"
echo "restored $dump"
