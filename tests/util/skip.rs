//! Skips that show. A test that cannot run its check here says so on stderr, past the
//! harness's capture, as `SKIPPED <what>: <why>` (`.ci/run` counts such lines); under
//! `CI=true` it fails instead, since CI provides every peer and IPv6 loopback.
#![allow(dead_code)]

use std::io::Write;

/// Whether this is a CI run (`CI=true`, as `.ci/run` and most CI services set it).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Reports that `what` cannot be checked here, for `why`: a failure under CI, else one
/// `SKIPPED` line on stderr (one write, so that the line stays whole).
#[track_caller]
pub fn skip(what: &str, why: &str) {
    if under_ci() {
        panic!("{what}: {why} (under CI=true this fails instead of skipping)");
    }
    let _ = std::io::stderr().write_all(format!("SKIPPED {what}: {why}\n").as_bytes());
}
