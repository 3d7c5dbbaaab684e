#!/usr/bin/env bash
# Run a command (make test: pytest) with FLUORO_AUDIT_TEST_PG naming a PostgreSQL server, so the
# PostgreSQL half of the tests runs on a developer's machine too, not only in CI:
#   - FLUORO_AUDIT_TEST_PG already set (CI, .ci/run): use that server, start nothing;
#   - else, when PostgreSQL's server binaries are installed (Debian: /usr/lib/postgresql/*/bin),
#     start a throwaway cluster on a free port of 127.0.0.1 in a temporary directory, and stop
#     and delete it when the command ends (also on failure or Ctrl-C);
#   - else say once that the PostgreSQL half is skipped and how to enable it (under CI=true the
#     tests then fail, as CI must never pass by skipping).
# Usage: .ci/throwaway_pg.sh COMMAND [ARG...]   (FLUORO_AUDIT_PG_BIN overrides the binaries' dir)
set -euo pipefail

if [ -n "${FLUORO_AUDIT_TEST_PG:-}" ]; then
  exec "$@"
fi

bindir="${FLUORO_AUDIT_PG_BIN:-}"
if [ -z "$bindir" ]; then
  # The newest installed major version (Debian keeps one directory per version).
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
fi
if [ -z "$bindir" ] && command -v pg_config >/dev/null 2>&1; then
  bindir=$(pg_config --bindir)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_ctl" ]; then
  cat >&2 <<'EOF'
*** PostgreSQL half of the tests SKIPPED: FLUORO_AUDIT_TEST_PG is not set and no PostgreSQL
*** server binaries (initdb, pg_ctl) were found. To run it, install them (Debian/Ubuntu:
*** apt-get install postgresql; make test then starts a throwaway cluster by itself) or set
*** FLUORO_AUDIT_TEST_PG=postgresql://user:pass@127.0.0.1:5432/postgres (a role with CREATEDB).
EOF
  exec "$@"
fi

# PostgreSQL refuses to run as root: as root, run the server as an unprivileged account.
as_user=()
if [ "$(id -u)" = 0 ]; then
  owner=postgres
  id -u "$owner" >/dev/null 2>&1 || owner=nobody
  as_user=(runuser -u "$owner" --)
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/fluoro-audit-pg.XXXXXX")
data="$dir/data"
cleanup() {
  if [ -f "$data/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
# Run as the server's account, from a directory it can enter (not the caller's checkout).
as_owner() { (cd "$dir" && "${as_user[@]}" "$@"); }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[ ${#as_user[@]} -eq 0 ] || chown "$owner" "$dir"
chmod 700 "$dir"

password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
role=fluoro_test
# The bootstrap superuser signs in only through the socket in the private directory (trust);
# TCP on 127.0.0.1 needs the test role's password.
as_owner "$bindir/initdb" -D "$data" -U fluoro_admin --auth-local=trust \
  --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
started=""
for _ in 1 2 3; do  # a free port can be taken between the check and the start: try again
  port=$(free_port)
  if as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 -o \
      "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
       -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null; then
    started=1
    break
  fi
done
if [ -z "$started" ]; then
  echo "throwaway PostgreSQL did not start; its log:" >&2
  cat "$dir/server.log" >&2
  exit 1
fi

as_owner "$bindir/psql" -h "$dir" -p "$port" -U fluoro_admin -d postgres -qtA \
  -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE ROLE $role LOGIN CREATEDB CREATEROLE PASSWORD '$password';
GRANT pg_signal_backend TO $role;
SQL
echo "Throwaway PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') on" \
  "127.0.0.1:$port for the PostgreSQL half of the tests (removed afterwards)" >&2
export FLUORO_AUDIT_TEST_PG="postgresql://$role:$password@127.0.0.1:$port/postgres"

status=0
"$@" || status=$?
exit "$status"
