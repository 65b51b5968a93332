//! Fuzz target: any bytes as a results (Parquet) file ([`oodscope_engine::fuzzing::results`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = oodscope_engine::fuzzing::results(data);
});
