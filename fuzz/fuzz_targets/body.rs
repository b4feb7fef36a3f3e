//! The body decoder, each framing, whole and split. See `volley::fuzzing::body` for the
//! input layout.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| volley::fuzzing::body(data));
