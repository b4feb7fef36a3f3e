//! The DNS response parser, checked against a model of the CNAME chain and its own promises,
//! and DNS-over-TCP framing, whole and split. See `volley::testing::fuzz::dns` for the input
//! layout.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| volley::testing::fuzz::dns(data));
