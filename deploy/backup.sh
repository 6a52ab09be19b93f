#!/usr/bin/env bash
# Dump the kamen database (pg_dump custom format) into KAMEN_BACKUP_DIR and
# delete dumps older than KAMEN_BACKUP_KEEP_DAYS. Restore: deploy/restore.sh.
# Reads DATABASE_URL like every kamen process (e.g. from /etc/kamen/kamen.env).
set -euo pipefail
: "${DATABASE_URL:?DATABASE_URL is not set}"
dir="${KAMEN_BACKUP_DIR:-/var/backups/kamen}"
keep="${KAMEN_BACKUP_KEEP_DAYS:-14}"
url="${DATABASE_URL/postgresql+psycopg:/postgresql:}"   # libpq does not know SQLAlchemy's driver suffix
mkdir -p "$dir"
umask 077
target="$dir/kamen-$(date +%Y%m%d-%H%M%S).dump"
pg_dump --format=custom --file="$target.partial" "$url"
mv "$target.partial" "$target"                           # a dump is complete or absent
find "$dir" -maxdepth 1 -name 'kamen-*.dump' -mtime +"$keep" -delete
echo "$target"
