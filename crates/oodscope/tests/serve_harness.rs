//! What the `serve` tests share: a detector made once by `oodscope detector save` on the bundled
//! model, the real `oodscope serve` started on a free port of 127.0.0.1, OIP requests (JSON and
//! binary data) and their answers decoded, and the references: `oodscope check`'s and `oodscope
//! score`'s verdicts on the same files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use base64::Engine as _;
use oodscope_serve::loadgen::{self, Answer, Payload};
use serde_json::{Value, json};

use crate::support;

/// The detector's name: the OIP model name.
pub const NAME: &str = "fmnist-msp";

/// A hang bound: `seconds`, scaled by OODSCOPE_TEST_TIME_SCALE.
pub fn bound(seconds: f64) -> Duration {
    let scale: f64 = std::env::var("OODSCOPE_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    Duration::from_secs_f64(seconds * scale)
}

/// A detector file for the bundled model (MSP, α = 0.05 on the demo's Fashion-MNIST test images,
/// model embedded), made once per test run with `oodscope detector save`.
pub fn detector() -> &'static Path {
    static MADE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = MADE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fmnist-msp.oodsd");
        let root = support::repo_root();
        let (code, _, err) = support::oodscope_with_cache(
            dir.path(),
            &[
                "detector",
                "save",
                "--model",
                &root.join("models/fmnist-resnet.pt").to_string_lossy(),
                "--method",
                "msp",
                "--calibration",
                &root.join("assets/demo/fmnist-test").to_string_lossy(),
                "--false-alarm",
                "0.05",
                "--name",
                NAME,
                "--embed-model",
                "--quiet",
                "--out",
                &path.to_string_lossy(),
            ],
        );
        assert_eq!(code, 0, "detector save failed: {err}");
        (dir, path)
    });
    path
}

/// Demo images: `n` Fashion-MNIST test images (ID) and `m` MNIST digits (mostly OOD), sorted paths.
pub fn demo_images(n: usize, m: usize) -> Vec<PathBuf> {
    let root = support::repo_root().join("assets/demo");
    let mut fashion: Vec<PathBuf> = walk(&root.join("fmnist-test"));
    let mut digits: Vec<PathBuf> = walk(&root.join("mnist"));
    fashion.truncate(n);
    digits.truncate(m);
    fashion.extend(digits);
    fashion
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// A running `oodscope serve`, its stderr read line by line; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Server {
    /// Starts `oodscope serve --detector <detector()> --port 0 <extra>` and waits for its ready line.
    pub fn start(extra: &[&str]) -> Server {
        let detector = detector().to_string_lossy().into_owned();
        let mut args = vec!["serve", "--detector", &detector, "--port", "0", "--device", "cpu"];
        args.extend_from_slice(extra);
        let (child, lines) = support::spawn_reading_stderr(
            Command::new(env!("CARGO_BIN_EXE_oodscope"))
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null()),
        );
        let mut server = Server {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            lines,
            seen: Vec::new(),
        };
        let ready = server.wait_for_line("oodscope serve: ");
        let port: u16 = ready
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {ready:?}"));
        assert!(
            ready.starts_with(&format!("oodscope serve: {NAME} on http://127.0.0.1:{port} (")),
            "{ready}"
        );
        server.addr = SocketAddr::from(([127, 0, 0, 1], port));
        server
    }

    /// Waits for a stderr line starting with `start` and returns it.
    pub fn wait_for_line(&mut self, start: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(bound(120.0))
                .unwrap_or_else(|e| panic!("no line {start:?} ({e}): {:?}", self.seen));
            self.seen.push(line.clone());
            if line.starts_with(start) {
                return line;
            }
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        loadgen::request(self.addr, "GET", path, &empty()).unwrap()
    }

    pub fn post(&self, path: &str, payload: &Payload) -> Answer {
        loadgen::request(self.addr, "POST", path, payload).unwrap()
    }

    pub fn infer(&self, payload: &Payload) -> Answer {
        infer_at(self.addr, payload)
    }

    /// A metric's value from `/metrics` (the line `name value`, labels included in `name`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = String::from_utf8_lossy(&self.get("/metrics").body).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The server's resident memory (VmRSS, KiB).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Sends a signal (`TERM`, `INT`) to the server.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the server to exit (bounded); its exit code and every stderr line.
    pub fn finish(mut self) -> (Option<i32>, Vec<String>) {
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < bound(60.0),
                "the server did not exit: {:?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(self.lines.try_iter());
        (status.code(), seen)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An infer request to the server at `addr`.
pub fn infer_at(addr: SocketAddr, payload: &Payload) -> Answer {
    loadgen::request(addr, "POST", &format!("/v2/models/{NAME}/infer"), payload).unwrap()
}

pub fn empty() -> Payload {
    Payload {
        body: Default::default(),
        header_length: None,
    }
}

/// An infer request in JSON: each file base64-encoded.
pub fn json_request(files: &[Vec<u8>]) -> Payload {
    let data: Vec<String> = files
        .iter()
        .map(|f| base64::engine::general_purpose::STANDARD.encode(f))
        .collect();
    let body = json!({"inputs": [{"name": "image", "shape": [files.len()], "datatype": "BYTES", "data": data}]});
    Payload {
        body: body.to_string().into(),
        header_length: None,
    }
}

/// An infer request with the binary-data extension, outputs asked in binary (as tritonclient does).
pub fn binary_request(files: &[Vec<u8>]) -> Payload {
    let mut raw = Vec::new();
    for f in files {
        raw.extend_from_slice(&(f.len() as u32).to_le_bytes());
        raw.extend_from_slice(f);
    }
    let header = json!({
        "inputs": [{"name": "image", "shape": [files.len()], "datatype": "BYTES", "parameters": {"binary_data_size": raw.len()}}],
        "parameters": {"binary_data_output": true},
    })
    .to_string();
    let header_length = header.len();
    let mut body = header.into_bytes();
    body.extend_from_slice(&raw);
    Payload {
        body: body.into(),
        header_length: Some(header_length),
    }
}

/// One image's outputs as the server answered them.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub score: f32,
    pub is_ood: bool,
    pub p_value: f32,
    pub class: i64,
    pub probability: f32,
}

/// The outputs of a 200 answer, JSON or binary.
pub fn outputs(answer: &Answer) -> Vec<Served> {
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let n: usize = answer
        .header("inference-header-content-length")
        .map_or(answer.body.len(), |v| v.parse().unwrap());
    let header: Value = serde_json::from_slice(&answer.body[..n]).unwrap();
    assert_eq!(header["model_name"], NAME);
    let mut binary = &answer.body[n..];
    let mut columns: std::collections::HashMap<String, Vec<f64>> = Default::default();
    for output in header["outputs"].as_array().unwrap() {
        let name = output["name"].as_str().unwrap().to_string();
        let count = output["shape"][0].as_u64().unwrap() as usize;
        let values: Vec<f64> = match output["parameters"]["binary_data_size"].as_u64() {
            Some(size) => {
                let (mine, rest) = binary.split_at(size as usize);
                binary = rest;
                match output["datatype"].as_str().unwrap() {
                    "FP32" => mine
                        .chunks(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                        .collect(),
                    "INT64" => mine
                        .chunks(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                        .collect(),
                    "BOOL" => mine.iter().map(|&b| b as f64).collect(),
                    other => panic!("{other}"),
                }
            }
            None => output["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().or(v.as_bool().map(|b| b as u8 as f64)).unwrap())
                .collect(),
        };
        assert_eq!(values.len(), count, "{name}");
        columns.insert(name, values);
    }
    let n = columns["score"].len();
    (0..n)
        .map(|i| Served {
            score: columns["score"][i] as f32,
            is_ood: columns["is_ood"][i] != 0.0,
            p_value: columns["p_value"][i] as f32,
            class: columns["class"][i] as i64,
            probability: columns["probability"][i] as f32,
        })
        .collect()
}

/// `oodscope check --format jsonl` on `files`: the reference verdicts, in order.
pub fn checked(files: &[PathBuf]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "check".to_string(),
        "--detector".into(),
        detector().to_string_lossy().into_owned(),
        "--format".into(),
        "jsonl".into(),
        "--device".into(),
        "cpu".into(),
        "--quiet".into(),
    ];
    args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = support::oodscope_with_cache(dir.path(), &args);
    assert_eq!(code, 0, "{err}");
    let records: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by_path: std::collections::HashMap<String, Value> = records
        .into_iter()
        .map(|r| (r["path"].as_str().unwrap().to_string(), r))
        .collect();
    files
        .iter()
        .map(|f| {
            by_path
                .get(f.to_string_lossy().as_ref())
                .cloned()
                .unwrap_or_else(|| panic!("{f:?} not checked"))
        })
        .collect()
}

/// `oodscope score --method msp --scores CSV` on copies of `files` (the first `n_id` as the ID set,
/// the rest as the OOD set): each file's (score, predicted class name), in order.
pub fn scored(files: &[PathBuf], n_id: usize) -> Vec<(f64, String)> {
    let dir = tempfile::tempdir().unwrap();
    for (i, f) in files.iter().enumerate() {
        let set = dir.path().join(if i < n_id { "id" } else { "ood" });
        std::fs::create_dir_all(&set).unwrap();
        std::fs::copy(f, set.join(format!("{i:04}.png"))).unwrap();
    }
    let csv = dir.path().join("scores.csv");
    let root = support::repo_root();
    let (code, _, err) = support::oodscope_with_cache(
        dir.path(),
        &[
            "score",
            "--model",
            &root.join("models/fmnist-resnet.pt").to_string_lossy(),
            "--method",
            "msp",
            "--id",
            &dir.path().join("id").to_string_lossy(),
            "--ood",
            &dir.path().join("ood").to_string_lossy(),
            "--scores",
            &csv.to_string_lossy(),
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let mut rows: Vec<(usize, f64, String)> = csv::Reader::from_path(&csv)
        .unwrap()
        .records()
        .map(|r| {
            let r = r.unwrap();
            let name = Path::new(&r[2]).file_stem().unwrap().to_string_lossy().into_owned();
            (name.parse().unwrap(), r[3].parse().unwrap(), r[4].to_string())
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    assert_eq!(rows.len(), files.len());
    rows.into_iter().map(|(_, score, class)| (score, class)).collect()
}

/// Served outputs equal `check`'s: score and p-value within 1e-6, verdict and class exactly.
pub fn assert_same(served: &[Served], reference: &[Value]) {
    assert_eq!(served.len(), reference.len());
    for (s, r) in served.iter().zip(reference) {
        let score = r["score"].as_f64().unwrap();
        let p_value = r["p_value"].as_f64().unwrap();
        assert!((s.score as f64 - score).abs() <= 1e-6, "{s:?} vs {r}");
        assert!((s.p_value as f64 - p_value).abs() <= 1e-6, "{s:?} vs {r}");
        assert!(
            (s.probability as f64 - r["probability"].as_f64().unwrap()).abs() <= 1e-6,
            "{s:?} vs {r}"
        );
        assert_eq!(s.is_ood, r["verdict"] == "ood", "{s:?} vs {r}");
        assert_eq!(s.class, r["class_index"].as_i64().unwrap(), "{s:?} vs {r}");
    }
}

pub fn read_all(files: &[PathBuf]) -> Vec<Vec<u8>> {
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

pub fn ood_of(reference: &[Value]) -> f64 {
    reference.iter().filter(|r| r["verdict"] == "ood").count() as f64
}
