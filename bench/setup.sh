# Shared by the broker benchmarks (source it first): strict mode, the repository root, the
# RECORDS count (default 1,000,000), `step`, a release build of `sluice` as $S ($SLUICE if set), a throwaway
# $DIR, and scripts/cluster-lib.sh with its processes stopped and $DIR removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RECORDS=${RECORDS:-1000000}
step() { printf '\n=== %s\n' "$*"; }

# SLUICE=/path/to/sluice runs another build (say, the previous commit's, for a before/after
# in one sitting) and skips the build here.
if [ -z "${SLUICE:-}" ]; then
  cargo build --release --locked -p sluice-bin 2>&1 | tail -1
fi
S=${SLUICE:-$PWD/target/release/sluice}
DIR=$(mktemp -d -t sluice-bench.XXXXXX)
source scripts/cluster-lib.sh
trap 'cleanup; rm -rf "$DIR"' EXIT INT TERM
