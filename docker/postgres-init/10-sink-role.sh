#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory (and by
# tests/compose.rs against a fresh local database): creates the role the nodes
# log in with. It may read and write rows, never change the schema; the
# `migrate` job, as the owner, creates the tables, which the default
# privileges below open to the sink role as they appear.
set -euo pipefail
: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}" "${UNDERSTUDY_SINK_PASSWORD:?}"
# The password is read from the environment inside psql (\getenv), never
# passed as an argument, where ps would show it.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner="$POSTGRES_USER" <<'SQL'
\getenv sink_password UNDERSTUDY_SINK_PASSWORD
SELECT format('CREATE ROLE understudy_sink LOGIN PASSWORD %L', :'sink_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'understudy_sink') \gexec
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE ON TABLES TO understudy_sink;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO understudy_sink;
SQL
