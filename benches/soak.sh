#!/usr/bin/env bash
# Soak: about a million keep-alive requests with ~1 % faults against the embedded server,
# checking every result, descriptors and VmRSS (tests/soak.rs, ignored by default).
#
#   bash benches/soak.sh                      # 1,000,000 requests at concurrency 50
#   SOAK_REQUESTS=200000 bash benches/soak.sh # a shorter run
#
# Settings: SOAK_REQUESTS, SOAK_CONCURRENCY, SOAK_REPORT_EVERY, SOAK_WATCHDOG_SECS.
# Extra arguments go to the test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --release --test soak -- --ignored --nocapture "$@"
