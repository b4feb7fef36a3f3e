//! The body decoder, each framing, whole and split. See `volley::testing::fuzz::body` for the
//! input layout.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| volley::testing::fuzz::body(data));
