//! `oodscope-bench`: the measurements behind `scripts/bench.sh` (one JSON line per run on stdout).

mod delta;
mod drop_latency;
mod folder;
mod interaction;
mod knn;
mod pipeline;
mod results;
mod serve_load;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use oodscope_engine::model::DeviceChoice;
use oodscope_engine::score::Method;

#[derive(Debug, Parser)]
#[command(
    name = "oodscope-bench",
    about = "Benchmarks of oodscope (driven by scripts/bench.sh)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Images/s of the streaming pipeline (run_scoring), or of the model alone on preloaded tensors.
    Pipeline(PipelineArgs),
    /// Milliseconds per GUI interaction on synthetic scores (threshold move, T re-score, curves).
    Interaction(InteractionArgs),
    /// Milliseconds from a drop to its scored cards in the window's app (no display), on an idle
    /// worker and while a long scoring job runs (the priority lane).
    Drop(DropArgs),
    /// Writes a folder of small PNGs (variants of the demo images) for the memory measurement.
    MakeFolder(MakeFolderArgs),
    /// Writes raw float32 vectors into a fit-format file as a fit writes its KNN bank (normalised,
    /// streamed), for `knn` and for faiss (scripts/bench_knn.py) to search the same vectors.
    KnnBank(KnnBankArgs),
    /// Queries/s of the KNN bank's exact k-th-distance search (`Bank::kth_distance`) over raw
    /// float32 queries, in batches; the bank in memory if it fits the budget, else read from disk.
    Knn(KnnArgs),
    /// Writes N synthetic rows through the results writer (as a run's batches), timed.
    ResultsWrite(results::ResultsWriteArgs),
    /// Opens a results file with `results::open_with`, timed, with the peak resident memory.
    ResultsOpen(results::ResultsOpenArgs),
    /// Milliseconds per δ move in the window on a results file (operating points, verdict counts,
    /// the gallery's verdict filter), after opening it as the window does.
    ResultsDelta(delta::DeltaArgs),
    /// Throughput and p50 / p99 latency of an Open Inference Protocol server (`oodscope serve` or
    /// the Python server of scripts/bench_serve_python.py) at several concurrencies.
    ServeLoad(serve_load::ServeLoadArgs),
}

#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    #[arg(long, default_value = "models/fmnist-resnet.pt")]
    pub model: PathBuf,
    #[arg(long, required = true)]
    pub id: Vec<String>,
    #[arg(long, required = true)]
    pub ood: Vec<String>,
    /// msp or odin (ODIN at the paper's T = 1000, ε = 0.0014).
    #[arg(long, default_value = "msp")]
    pub method: Method,
    /// Several methods scored in one plan (one forward pass per batch for all of them), at their
    /// defaults: a comma-separated list of names, or `all-posthoc` (every registered method the
    /// model supports with the fit that takes no input step at its defaults). Replaces --method.
    #[arg(long, conflicts_with = "method")]
    pub methods: Option<String>,
    /// A fit file (`oodscope fit --out FILE`) for the methods that need one; loaded before timing.
    #[arg(long)]
    pub fit: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// libtorch intra-op threads [default: oodscope's: the cores other processes leave free on the CPU, 1 with CUDA].
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Decode every image first, then time the model alone (the ceiling of the pipeline).
    #[arg(long)]
    pub preloaded: bool,
    /// Decode in turn with the model, or on a producer thread beside it [default: the device's
    /// (in turn on the CPU, overlapped on a GPU)].
    #[arg(long, value_parser = ["in-turn", "overlapped"])]
    pub schedule: Option<String>,
    /// Leave glibc's malloc at its defaults (oodscope keeps tensor buffers in the heap; see crates/engine/src/alloc.rs).
    #[arg(long)]
    pub malloc_defaults: bool,
}

#[derive(Debug, clap::Args)]
pub struct InteractionArgs {
    /// Total synthetic scores: 40% ID, three OOD sets of 20% each.
    #[arg(long, default_value_t = 100_000)]
    pub scores: usize,
    #[arg(long, default_value_t = 21)]
    pub repeats: usize,
}

#[derive(Debug, clap::Args)]
pub struct DropArgs {
    #[arg(long, default_value = "models/fmnist-resnet.pt")]
    pub model: PathBuf,
    /// The long job's ID set.
    #[arg(long, default_value = "assets/demo/fmnist-test")]
    pub id: String,
    /// The long job's OOD set.
    #[arg(long, default_value = "uniform:20000")]
    pub ood: String,
    /// ODIN's ε in the long job (> 0: a backward pass per batch, as the demo's rescoring).
    #[arg(long, default_value_t = 0.0014)]
    pub epsilon: f64,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// The images dropped each time.
    #[arg(
        long = "image",
        default_values = ["assets/internet/cat-chelsea.png", "assets/internet/coffee-cup.jpg", "assets/internet/astronaut.jpg"]
    )]
    pub images: Vec<PathBuf>,
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
}

#[derive(Debug, clap::Args)]
pub struct MakeFolderArgs {
    /// Demo images the variants are made from.
    #[arg(long, default_value = "assets/demo/mnist")]
    pub source: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Images in all; half go to OUT/id, half to OUT/ood.
    #[arg(long)]
    pub images: usize,
}

#[derive(Debug, clap::Args)]
pub struct KnnBankArgs {
    /// Raw little-endian float32 vectors, row after row (not normalised).
    #[arg(long)]
    pub vectors: PathBuf,
    /// Values per row (D).
    #[arg(long)]
    pub dim: usize,
    /// The fit-format (safetensors) file to write, holding `knn_bank` [N, D].
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct KnnArgs {
    /// A file holding `knn_bank` (written by `knn-bank`, or a fit file).
    #[arg(long)]
    pub bank: PathBuf,
    /// Raw little-endian float32 queries [Q, D] (not normalised).
    #[arg(long)]
    pub queries: PathBuf,
    #[arg(long, default_value_t = 50)]
    pub k: usize,
    /// Queries per `kth_distance` call.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Search only the first N queries.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Banks up to this many MiB are searched in memory, larger ones read from the file in blocks
    /// [default: oodscope's, `OODSCOPE_BANK_MEMORY_MB` or 256].
    #[arg(long)]
    pub budget_mb: Option<usize>,
    /// libtorch intra-op threads [default: oodscope's on the CPU, all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write each query's k-th distance here (raw little-endian float64), for the comparison.
    #[arg(long)]
    pub distances_out: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    oodscope_engine::torch_libs::load_cuda_or_warn();
    let glibc_defaults = matches!(&cli.command, Command::Pipeline(args) if args.malloc_defaults);
    if !glibc_defaults {
        oodscope_engine::alloc::keep_tensor_buffers_in_the_heap();
    }
    let result = match &cli.command {
        Command::Pipeline(args) => pipeline::run(args),
        Command::Interaction(args) => interaction::run(args),
        Command::Drop(args) => drop_latency::run(args),
        Command::MakeFolder(args) => folder::run(args),
        Command::KnnBank(args) => knn::write_bank(args),
        Command::Knn(args) => knn::run(args),
        Command::ResultsWrite(args) => results::write(args),
        Command::ResultsOpen(args) => results::open(args),
        Command::ResultsDelta(args) => delta::run(args),
        Command::ServeLoad(args) => serve_load::run(args),
    };
    match result {
        Ok(json) => println!("{json}"),
        Err(err) => {
            eprintln!("error: {}", format!("{err:#}").replace('\n', " "));
            std::process::exit(1);
        }
    }
}

/// The result of one measurement, printed as one JSON line.
type Report = Result<serde_json::Value>;
