//! Fuzz target: any bytes as an image file (first byte: the preprocessing) ([`oodscope_engine::fuzzing::image`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = oodscope_engine::fuzzing::image(data);
});
