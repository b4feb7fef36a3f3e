#!/usr/bin/env bash
# The long soak: ten million keep-alive requests with ~1 % faults against the test server,
# checking every result, descriptors and VmRSS (tests/soak.rs, ignored by default; CI runs a
# 30-second one of 1,800,000).
#
#   bash benches/soak.sh                        # 10,000,000 requests at concurrency 50
#   SOAK_REQUESTS=1000000 bash benches/soak.sh  # a shorter run
#
# Settings: SOAK_REQUESTS, SOAK_CONCURRENCY, SOAK_REPORT_EVERY, SOAK_WATCHDOG_SECS.
# Extra arguments go to the test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_REQUESTS="${SOAK_REQUESTS:-10000000}"
exec cargo test --release --test soak -- --ignored --nocapture "$@"
