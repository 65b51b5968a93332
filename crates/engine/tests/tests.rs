//! The engine's integration tests, one binary: scores, fits and tuning against PyTorch, NumPy and
//! pytorch-ood references made by `tests/fixtures/*.py` (scripts/test.sh), through the library API.

mod support;

mod blocks;
mod bundled_models;
mod deploy;
mod feature_methods;
mod fuzz_corpus;
mod pytorch_parity;
mod tune_reference;
mod tune_reuse;
