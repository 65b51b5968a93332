//! Fuzz target: any bytes as a model card's text ([`oodscope_engine::fuzzing::card`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = oodscope_engine::fuzzing::card(data);
});
