#!/usr/bin/env bash
# Runs every test. Installs what the tests need where it is missing (PostgreSQL server binaries,
# Chromium for browser tests, Node.js for the postgrest-js client tests), then `dotnet test`.
set -euo pipefail
cd "$(dirname "$0")"

have_pg() {
  command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir 2>/dev/null)/initdb" ] && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

missing=()
have_pg || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # The tests start their own throwaway cluster: don't let the package create and start a default one.
  $SUDO mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v dotnet >/dev/null 2>&1 || { echo "test.sh: the .NET 10 SDK is required (https://dot.net)"; exit 1; }

# Real JavaScript clients (@supabase/postgrest-js, @supabase/supabase-js) used by the client tests, pinned by
# package-lock.json; installed again when a checkout's node_modules predates a package.
if [ ! -d DbStudio.Tests/js/node_modules ] || [ ! -d DbStudio.Tests/js/node_modules/@supabase/supabase-js ]; then
  (cd DbStudio.Tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi

log=$(mktemp)
set +e
dotnet test DbStudio.sln --logger "console;verbosity=normal" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# A plain summary line: "N passed, N failed, N skipped" (summed over test assemblies).
count() { grep -E "^ +$1: +[0-9]+$" "$log" | awk '{s+=$2} END {print s+0}'; }
# CI keeps only the end of the output: name every failed test again there, with its message and stack.
if grep -qE "^ +Failed [A-Za-z]" "$log"; then
  echo "---- failed tests (repeated from above) ----"
  awk '/^  (Passed|Skipped) |^\[xUnit|^Test Run|^Total tests/ {show=0} /^  Failed [A-Za-z]/ {show=1; n=0} show && n++ < 60' "$log"
  echo "----"
fi
if grep -qE "^Total tests: +[0-9]+" "$log"; then
  echo "tests: $(count Passed) passed, $(count Failed) failed, $(count Skipped) skipped"
fi
rm -f "$log"
exit "$status"
