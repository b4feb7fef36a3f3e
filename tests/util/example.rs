//! An example's binary for a test that runs it as a program.
//!
//! `CARGO_BIN_EXE_<name>` exists for `[[bin]]` targets only, and the examples are built by
//! `cargo test` as test harnesses (they have `test = true`), not as the programs. So
//! [`build`] runs `$CARGO build --example NAME --message-format=json`, with the features and
//! the profile the test was built with, and takes the path from cargo's `executable`
//! message. That build is a no-op when the binary is fresh, and always runs the current
//! source. Cargo's `CARGO_PKG_*` and `CARGO_MANIFEST_*` variables, set for the test, are
//! removed from that build's environment: build scripts that watch them (ring's) would
//! otherwise see a change and rebuild, twice per run.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Builds the example `name` (or finds it fresh) and returns its path.
pub fn build(name: &str) -> PathBuf {
    let mut features = Vec::new();
    macro_rules! enabled {
        ($($feature:literal),*) => {
            $(if cfg!(feature = $feature) { features.push($feature); })*
        };
    }
    enabled!(
        "gzip",
        "deflate",
        "brotli",
        "zstd",
        "tls",
        "native-roots",
        "futures-io",
        "json",
        "cookies",
        "psl",
        "redis",
        "fuzzing"
    );
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--example", name, "--message-format=json"])
        .args(["--features", &features.join(",")]);
    let defaults = ["gzip", "deflate", "tls", "json"];
    if !defaults.iter().all(|f| features.contains(f)) {
        cmd.arg("--no-default-features");
    }
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_") || key.starts_with("CARGO_MANIFEST_") {
            cmd.env_remove(&*key);
        }
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(out.status.success(), "cargo build --example {name} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo names the {name} executable"))
}
