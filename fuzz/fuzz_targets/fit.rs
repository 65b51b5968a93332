//! Fuzz target: any bytes as a fit file for the bundled demo model ([`oodscope_engine::fuzzing::fit`]).
#![no_main]

use oodscope_engine::model::Model;

thread_local! {
    /// Loaded once: the fit is checked against it.
    static MODEL: Model = oodscope_engine::fuzzing::demo_model().expect("the demo model loads");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = MODEL.with(|model| oodscope_engine::fuzzing::fit(data, model));
});
