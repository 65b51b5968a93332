//! AOTInductor packages (`.pt2` from `torch._inductor.aoti_compile_and_package`): loaded and run
//! through libtorch's `AOTIModelPackageLoader` by the C++ shim in crates/engine/cpp/aoti_shim.cpp. Inference only
//! (compiled code has no autograd), on the one device the package was compiled for.
//!
//! The batch sizes a package accepts are those its compiler proved it correct for: a dynamic batch
//! dim still gets bounds (torch 2.13 guards a convolution's batch at 16, so a package exported at
//! batch 2 takes 2…15 and one exported at 16 takes 16 and more), and a static one takes one size.
//! Running it outside them reads the wrong memory, so the package's own input checks are turned on
//! (`AOTI_RUNTIME_CHECK_INPUTS`) and the bounds, read from its generated `check_input_0`, are met by
//! padding a short batch with zero images and splitting a long one; the padded rows are dropped.
//!
//! The package is unpacked into a folder of ours and loaded from there (the loader takes a folder
//! too): the loader's own extraction leaves its temporary folder behind when loading fails.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use tch::{Device, IValue, Kind, Tensor};

/// Raw C entry points of crates/engine/cpp/aoti_shim.cpp.
mod ffi {
    use std::ffi::{c_char, c_int, c_longlong, c_void};

    use torch_sys::C_tensor;

    unsafe extern "C" {
        pub fn oodscope_aoti_metadata(path: *const c_char, key: *const c_char, error: *mut *mut c_char) -> *mut c_char;
        pub fn oodscope_aoti_load(path: *const c_char, device_index: c_int, error: *mut *mut c_char) -> *mut c_void;
        pub fn oodscope_aoti_run(
            handle: *mut c_void,
            input: *const C_tensor,
            outputs: *mut *mut C_tensor,
            capacity: c_longlong,
            error: *mut *mut c_char,
        ) -> c_longlong;
        pub fn oodscope_aoti_free(handle: *mut c_void);
        pub fn oodscope_aoti_free_string(s: *mut c_char);
    }
}

/// The most outputs a package may return (a model gives logits, features, a confidence logit).
const MAX_OUTPUTS: usize = 16;

/// Takes a string the shim allocated (freeing it); `None` for null.
fn take_string(s: *mut c_char) -> Option<String> {
    if s.is_null() {
        return None;
    }
    // SAFETY: the shim returns NUL-terminated strings from malloc, freed only here.
    let text = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
    unsafe { ffi::oodscope_aoti_free_string(s) };
    Some(text)
}

fn c_path(path: &Path) -> Result<CString, String> {
    CString::new(path.to_string_lossy().as_bytes()).map_err(|_| "the path holds a NUL byte".to_string())
}

/// The device a package was compiled for (`cpu`, `cuda`…), from its metadata.
pub fn package_device(path: &Path) -> Result<String, String> {
    let c = c_path(path)?;
    let key = c"AOTI_DEVICE_KEY";
    let mut error = std::ptr::null_mut();
    // SAFETY: valid C strings; the error out-param is written only on failure.
    let value = unsafe { ffi::oodscope_aoti_metadata(c.as_ptr(), key.as_ptr(), &mut error) };
    match take_string(value) {
        Some(v) if !v.is_empty() => Ok(v),
        Some(_) => Ok("cpu".into()),
        None => Err(take_string(error).unwrap_or_else(|| "cannot read its metadata".into())),
    }
}

/// The batch sizes a package accepts: `min..=max` (`max` unbounded when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRange {
    pub min: i64,
    pub max: Option<i64>,
}

impl Default for BatchRange {
    fn default() -> Self {
        BatchRange { min: 1, max: None }
    }
}

impl BatchRange {
    /// Reads the bounds of input 0's dim 0 from the generated wrapper's `check_input_0`; the
    /// default (any size: the package's own check then says what is wrong) when it is not there.
    pub fn of_package(path: &Path) -> BatchRange {
        wrapper_source(path)
            .map(|source| BatchRange::parse(&source))
            .unwrap_or_default()
    }

    /// The bounds in a wrapper's C++ source (the checks `cpp_wrapper_cpu.py` writes).
    fn parse(source: &str) -> BatchRange {
        let mut range = BatchRange::default();
        let Some(start) = source.find("static void check_input_0(") else {
            return range;
        };
        let body = &source[start..];
        let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
        let number = |s: &str| s.trim().trim_end_matches('L').parse::<i64>().ok();
        for line in body.lines().map(str::trim) {
            let Some(cond) = line.strip_prefix("if (").and_then(|l| l.strip_suffix(") {")) else {
                continue;
            };
            if let Some((var, n)) = cond.split_once(" < ")
                && var.ends_with("_size[0]")
                && let Some(n) = number(n)
            {
                range.min = n.max(1);
            } else if let Some((var, n)) = cond.split_once(" > ")
                && var.ends_with("_size[0]")
                && let Some(n) = number(n)
            {
                range.max = Some(n);
            } else if let Some((n, var)) = cond.split_once(" != ")
                && var.ends_with("_size[0]")
                && let Some(n) = number(n)
            {
                range = BatchRange { min: n, max: Some(n) };
            }
        }
        range
    }

    /// Whether a batch of `n` fits as it is.
    fn fits(&self, n: i64) -> bool {
        n >= self.min && self.max.is_none_or(|m| n <= m)
    }
}

/// The C++ source of the package's wrapper (`…/data/aotinductor/model/*.wrapper.cpp`), if packed.
fn wrapper_source(path: &Path) -> Option<String> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).ok()?).ok()?;
    let name = archive
        .file_names()
        .find(|n| n.contains("data/aotinductor/model/") && n.ends_with(".wrapper.cpp"))?
        .to_string();
    let mut source = String::new();
    archive
        .by_name(&name)
        .ok()?
        .take(64 << 20)
        .read_to_string(&mut source)
        .ok()?;
    Some(source)
}

/// A package unpacked into a temporary folder, removed when dropped.
struct Unpacked(PathBuf);

impl Unpacked {
    fn new(package: &Path) -> Result<Unpacked, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let file = std::fs::File::open(package).map_err(|e| format!("cannot read it: {e}"))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| format!("not a readable zip archive ({e})"))?;
        let dir = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("oodscope-aoti-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => break Unpacked(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot make a folder to unpack it in {}: {e}", dir.display())),
            }
        };
        archive
            .extract(&dir.0)
            .map_err(|e| format!("cannot unpack it into {} ({e})", dir.0.display()))?;
        Ok(dir)
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loaded AOTInductor package.
pub struct AotiModel {
    handle: NonNull<c_void>,
    device: Device,
    batch: BatchRange,
    path: PathBuf,
    /// The unpacked files the loaded code came from (dropped after the handle).
    _unpacked: Unpacked,
}

// SAFETY: the loader owns its compiled model container, which is tied to no thread; its `run`
// takes the container's locks (AOTInductorModelContainer::run is documented thread-safe), so one
// handle may be moved between threads and used from several.
unsafe impl Send for AotiModel {}
unsafe impl Sync for AotiModel {}

impl Drop for AotiModel {
    fn drop(&mut self) {
        // SAFETY: the handle came from oodscope_aoti_load and is freed once, here.
        unsafe { ffi::oodscope_aoti_free(self.handle.as_ptr()) };
    }
}

impl AotiModel {
    /// Loads the package at `path` to run on `device` (which must be the one it was compiled for:
    /// the caller checks with [`package_device`]).
    pub fn load(path: &Path, device: Device) -> Result<AotiModel, String> {
        enable_input_checks();
        crate::torch_libs::load_libtorch()?;
        let unpacked = Unpacked::new(path)?;
        let c = c_path(&unpacked.0)?;
        let index: c_int = match device {
            Device::Cuda(i) => i as c_int,
            _ => -1,
        };
        let mut error = std::ptr::null_mut();
        // SAFETY: a valid C string; the error out-param is written only on failure.
        let handle = unsafe { ffi::oodscope_aoti_load(c.as_ptr(), index, &mut error) };
        let handle = NonNull::new(handle).ok_or_else(|| {
            let message = take_string(error).unwrap_or_else(|| "cannot load it".into());
            format!(
                "libtorch cannot load this AOTInductor package ({})",
                super::first_line(&message)
            )
        })?;
        Ok(AotiModel {
            handle,
            device,
            batch: BatchRange::of_package(path),
            path: path.to_path_buf(),
            _unpacked: unpacked,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The batch sizes the package accepts.
    pub fn batch_range(&self) -> BatchRange {
        self.batch
    }

    /// Runs the package on `x` `[N, …]` (any batch size: padded or split to the package's
    /// bounds): one tensor, or a tuple for several outputs, as TorchScript's `forward` gives them.
    pub fn forward(&self, x: &Tensor) -> Result<IValue, String> {
        let fail = |e: tch::TchError| super::first_line(&e.to_string());
        let x = x
            .f_detach()
            .and_then(|t| t.f_to_kind(Kind::Float))
            .and_then(|t| t.f_to_device(self.device))
            .and_then(|t| t.f_contiguous())
            .map_err(fail)?;
        let n = x.size().first().copied().unwrap_or(0);
        let mut outputs = if self.batch.fits(n) {
            self.run(&x)?
        } else {
            let step = self.batch.max.unwrap_or(n.max(self.batch.min)).max(1);
            let mut parts: Vec<Vec<Tensor>> = Vec::new();
            let mut start = 0;
            while start < n {
                let len = step.min(n - start);
                let chunk = x.f_narrow(0, start, len).map_err(fail)?;
                parts.push(self.run_padded(&chunk, len)?);
                start += len;
            }
            join(parts).map_err(fail)?
        };
        Ok(if outputs.len() == 1 {
            IValue::Tensor(outputs.remove(0))
        } else {
            IValue::Tuple(outputs.into_iter().map(IValue::Tensor).collect())
        })
    }

    /// Runs a chunk of `len` images, padded with zero images up to the package's minimum batch.
    fn run_padded(&self, chunk: &Tensor, len: i64) -> Result<Vec<Tensor>, String> {
        let fail = |e: tch::TchError| super::first_line(&e.to_string());
        if len >= self.batch.min {
            return self.run(&chunk.f_contiguous().map_err(fail)?);
        }
        let mut shape = chunk.size();
        shape[0] = self.batch.min - len;
        let padding = Tensor::f_zeros(&shape, (Kind::Float, self.device)).map_err(fail)?;
        let padded = Tensor::f_cat(&[chunk, &padding], 0).map_err(fail)?;
        self.run(&padded)?
            .iter()
            .map(|t| t.f_narrow(0, 0, len).map_err(fail))
            .collect()
    }

    /// One call of the compiled model.
    fn run(&self, x: &Tensor) -> Result<Vec<Tensor>, String> {
        let mut outputs = [std::ptr::null_mut(); MAX_OUTPUTS];
        let mut error = std::ptr::null_mut();
        // SAFETY: `x` is a live tensor (at::Tensor*) for the call; the shim writes at most
        // MAX_OUTPUTS new tensors, each owned by the Tensor that wraps it below.
        let count = unsafe {
            ffi::oodscope_aoti_run(
                self.handle.as_ptr(),
                x.as_ptr(),
                outputs.as_mut_ptr(),
                MAX_OUTPUTS as i64,
                &mut error,
            )
        };
        if count < 0 {
            let message = take_string(error).unwrap_or_else(|| "the compiled model failed".into());
            return Err(super::first_line(&message));
        }
        let count = count as usize;
        if count > MAX_OUTPUTS {
            return Err(format!(
                "the package returns {count} outputs (at most {MAX_OUTPUTS} are read)"
            ));
        }
        // SAFETY: the first `count` pointers are new at::Tensor objects, handed over here.
        Ok(outputs[..count]
            .iter()
            .map(|&p| unsafe { Tensor::from_ptr(p) })
            .collect())
    }
}

/// Each output's chunks, concatenated along the batch.
fn join(parts: Vec<Vec<Tensor>>) -> Result<Vec<Tensor>, tch::TchError> {
    let count = parts.first().map_or(0, Vec::len);
    (0..count)
        .map(|i| {
            let pieces: Vec<&Tensor> = parts.iter().filter_map(|p| p.get(i)).collect();
            Tensor::f_cat(&pieces, 0)
        })
        .collect()
}

/// Turns on the input checks compiled into every package (shapes, strides, dtype, device): read
/// once per package, at its first run. Set before the first package loads, from the thread that
/// loads models, before any package code runs.
fn enable_input_checks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: done once, before any package's code reads it; no other code of ours reads or
        // writes the environment while models load.
        unsafe { std::env::set_var("AOTI_RUNTIME_CHECK_INPUTS", "1") };
    });
}

#[cfg(test)]
mod tests {
    use super::BatchRange;

    #[test]
    fn batch_bounds_are_read_from_the_generated_checks() {
        let dynamic = "AOTI_NOINLINE static void check_input_0(\n    AtenTensorHandle* input_handles\n) {\n    if (arg4_1_size[0] < 2) {\n    if (arg4_1_size[0] > 15) {\n    if (3 != arg4_1_size[1]) {\n}\n";
        assert_eq!(BatchRange::parse(dynamic), BatchRange { min: 2, max: Some(15) });
        let open = "static void check_input_0(\n) {\n    if (arg4_1_size[0] < 16) {\n}\n";
        assert_eq!(BatchRange::parse(open), BatchRange { min: 16, max: None });
        let fixed =
            "static void check_input_0(\n) {\n    if (1 != arg0_1_size[0]) {\n    if (3 != arg0_1_size[1]) {\n}\n";
        assert_eq!(BatchRange::parse(fixed), BatchRange { min: 1, max: Some(1) });
        assert_eq!(BatchRange::parse("no checks"), BatchRange::default());
    }
}
