//! The command line's integration tests, one binary (ripgrep's pattern: libtorch is linked once):
//! the `oodscope` binary run as users run it, its outputs read back and checked against PyTorch,
//! scikit-learn and pyarrow.

mod support;

mod aoti;
mod bad_inputs;
mod cli_outputs;
mod cli_reference;
mod compare_cli;
mod detector_cli;
mod export_checks;
mod fit_cli;
mod fit_shard;
mod gmm_cli;
mod hf_model;
mod own_model;
mod preprocess;
mod reliability_fits;
mod reliability_inputs;
mod reliability_outputs;
mod reliability_signals;
mod results_cli;
mod results_from;
mod scale_out;
mod serve;
mod serve_clients;
mod serve_harness;
mod serve_load;
mod torch_loading;
mod train_export;
mod tune_cli;
mod window_deploy;
mod window_external;
mod window_results;
mod window_results_fit;
