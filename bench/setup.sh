# Shared by the broker benchmarks (source it first): strict mode, the repository root, the
# RECORDS count (default 1,000,000), `step`, a release build of `sluice` as $S, a throwaway
# $DIR, and scripts/cluster-lib.sh with its processes stopped and $DIR removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RECORDS=${RECORDS:-1000000}
step() { printf '\n=== %s\n' "$*"; }

cargo build --release --locked -p sluice-bin 2>&1 | tail -1
S=$PWD/target/release/sluice
DIR=$(mktemp -d -t sluice-bench.XXXXXX)
source scripts/cluster-lib.sh
trap 'cleanup; rm -rf "$DIR"' EXIT INT TERM
