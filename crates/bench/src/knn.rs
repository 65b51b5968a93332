//! The KNN bank's search on given vectors, for the comparison with faiss (`scripts/bench_knn.py`).
//! `knn-bank` writes raw float32 vectors into a fit-format file as a fit writes its bank (each row
//! normalised with `fit::bank::normalise`, streamed through `fit::file::Writer`, so no size sits in
//! memory); faiss reads the same normalised rows from that file. `knn` opens the bank as scoring
//! does (`Bank::open`: in memory within the budget, else read from the file in blocks for every
//! search) and times `Bank::kth_distance` over the queries, batch by batch.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use tch::{Device, Kind, Tensor};

use super::{KnnArgs, KnnBankArgs, Report};
use oodscope_engine::fit::cache::bank_budget;
use oodscope_engine::model::set_model_threads;
use oodscope_engine::stats::bank::{Bank, normalise};
use oodscope_engine::stats::fit_file::{Entry, Reader, Writer};

/// Rows converted per step while writing the bank: about 16 MB.
const WRITE_CHUNK_BYTES: usize = 16 << 20;
/// Queries in the untimed first call (thread pools, first allocations), on both sides.
const WARM_UP_QUERIES: usize = 64;

pub fn write_bank(args: &KnnBankArgs) -> Report {
    let start = Instant::now();
    let file = File::open(&args.vectors).with_context(|| args.vectors.display().to_string())?;
    let bytes = file.metadata()?.len() as usize;
    let row_bytes = args.dim * 4;
    if args.dim == 0 || !bytes.is_multiple_of(row_bytes) {
        bail!(
            "{}: {bytes} bytes is not a whole number of rows of {} float32 values",
            args.vectors.display(),
            args.dim
        );
    }
    let rows = bytes / row_bytes;
    let metadata = BTreeMap::from([("format".to_string(), "oodscope-bench-knn".to_string())]);
    let mut writer = Writer::create(&args.out, vec![Entry::f32("knn_bank", &[rows, args.dim])], &metadata)
        .with_context(|| args.out.display().to_string())?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let chunk_rows = (WRITE_CHUNK_BYTES / row_bytes).max(1);
    let mut buffer = vec![0u8; chunk_rows * row_bytes];
    let mut done = 0;
    while done < rows {
        let n = chunk_rows.min(rows - done);
        let chunk = &mut buffer[..n * row_bytes];
        input.read_exact(chunk)?;
        let z = Tensor::f_from_data_size(chunk, &[n as i64, args.dim as i64], Kind::Float)?;
        writer.write_tensor(&normalise(&z)?)?;
        done += n;
    }
    writer.finish().with_context(|| args.out.display().to_string())?;
    Ok(json!({
        "kind": "knn_bank",
        "rows": rows,
        "dim": args.dim,
        "seconds": start.elapsed().as_secs_f64(),
        "file_bytes": std::fs::metadata(&args.out)?.len(),
    }))
}

pub fn run(args: &KnnArgs) -> Report {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    set_model_threads(args.threads, Device::Cpu);
    let budget = args.budget_mb.map_or_else(bank_budget, |mb| mb << 20);
    let start = Instant::now();
    let reader = Arc::new(Reader::open(&args.bank).map_err(|e| anyhow!("{}: {e}", args.bank.display()))?);
    let bank = Bank::open(reader, "knn_bank", Device::Cpu, budget)
        .map_err(anyhow::Error::msg)?
        .ok_or_else(|| anyhow!("{}: no tensor `knn_bank`", args.bank.display()))?;
    let open_seconds = start.elapsed().as_secs_f64();

    let values = read_f32(&args.queries)?;
    if !values.len().is_multiple_of(bank.width) {
        bail!(
            "{}: {} values is not a whole number of rows of D = {}",
            args.queries.display(),
            values.len(),
            bank.width
        );
    }
    let available = values.len() / bank.width;
    let queries = args.limit.map_or(available, |l| l.min(available));
    let x = Tensor::from_slice(&values[..queries * bank.width]).view([queries as i64, bank.width as i64]);

    let warm = WARM_UP_QUERIES.min(args.batch_size).min(queries) as i64;
    let _ = bank.kth_distance(&x.narrow(0, 0, warm), args.k)?;

    let mut distances = Vec::with_capacity(queries);
    let mut batch_seconds = Vec::new();
    let start = Instant::now();
    let mut first = 0;
    while first < queries {
        let n = args.batch_size.min(queries - first);
        let batch_start = Instant::now();
        let d = bank.kth_distance(&x.narrow(0, first as i64, n as i64), args.k)?;
        distances.extend(Vec::<f64>::try_from(d)?);
        batch_seconds.push(batch_start.elapsed().as_secs_f64());
        first += n;
    }
    let seconds = start.elapsed().as_secs_f64();

    if let Some(path) = &args.distances_out {
        write_f64(path, &distances)?;
    }
    Ok(json!({
        "kind": "knn",
        "bank_rows": bank.len,
        "dim": bank.width,
        "k": args.k,
        "batch_size": args.batch_size,
        "queries": queries,
        "seconds": seconds,
        "queries_per_s": queries as f64 / seconds,
        "batch_seconds_median": median(&mut batch_seconds),
        "on_disk": bank.on_disk(),
        "budget_mb": budget >> 20,
        "open_seconds": open_seconds,
        "warm_up_queries": warm,
        "threads": tch::get_num_threads(),
        "mean_distance": distances.iter().sum::<f64>() / queries.max(1) as f64,
    }))
}

/// A raw little-endian float32 file's values.
fn read_f32(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    if !bytes.len().is_multiple_of(4) {
        bail!("{}: not a whole number of float32 values", path.display());
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn write_f64(path: &Path, values: &[f64]) -> Result<()> {
    let mut out = BufWriter::new(File::create(path).with_context(|| path.display().to_string())?);
    for v in values {
        out.write_all(&v.to_le_bytes())?;
    }
    out.flush()?;
    Ok(())
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}
