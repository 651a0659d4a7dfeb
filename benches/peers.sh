#!/usr/bin/env bash
# Rapport against a PostgreSQL peer, side by side (see BENCHMARKS.md).
#
# Installs PostgreSQL from the system packages if it is missing, then runs the harness, which
# starts a throwaway cluster on a free loopback port in a temporary directory and removes it
# when it is done. The table is printed and written to target/peers.md.
#
#   benches/peers.sh                                   # the full run: 3 runs, 5 s each, 1M and 10M
#   RAPPORT_BENCH_SIZES=1000000 benches/peers.sh       # without the 10M log (about 10 minutes less)
#   RAPPORT_BENCH_SCENARIOS=1,2 RAPPORT_BENCH_CLIENTS=32 benches/peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    echo "installing PostgreSQL from the system packages"
    apt-get update -qq && apt-get install -y -qq postgresql
fi
exec cargo bench --bench peers
