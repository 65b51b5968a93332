//! Fuzz target: any bytes as a detector file ([`oodscope_engine::fuzzing::detector`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = oodscope_engine::fuzzing::detector(data);
});
