//! The response head parser, whole and split, eager and as the client feeds it; then the
//! body the head declares. See `volley::testing::fuzz::head` for the input layout.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| volley::testing::fuzz::head(data));
