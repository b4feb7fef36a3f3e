//! Nothing here: the benchmarks are the `[[bench]]` targets of this package (see its
//! Cargo.toml), run with `cargo bench -p volley-benches`.
