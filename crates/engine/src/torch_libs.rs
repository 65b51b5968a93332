//! Loads libtorch's CUDA part at run time, from the folder the CPU part was loaded from, so that
//! an install with the CPU libraries alone runs without the CUDA libraries, and a CUDA libtorch
//! still gives CUDA.
//!
//! The binaries link `libtorch_cpu` only (build/libtorch_link.rs). `libtorch_cuda.so` registers the CUDA hooks
//! and kernels in its static initialisers, and libtorch asks for the hooks once and keeps the
//! answer: [`load_cuda`] must run before any tch call (first thing in `main`).

use std::path::{Path, PathBuf};

/// What [`load_cuda`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaLibrary {
    /// Loaded from this file: tch sees CUDA where a GPU and its driver are present.
    Loaded(PathBuf),
    /// The libtorch in use has no CUDA part (a CPU build, or the CPU libraries installed alone).
    Absent,
    /// It has one, but this machine has no NVIDIA driver: not loaded.
    NoDriver,
    /// It is there but could not be loaded (a missing CUDA library, say): the reason.
    Failed(PathBuf, String),
}

/// The folder of the loaded `libtorch_cpu.so`, from this process's memory map.
pub fn libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    libtorch_dir_in(&maps)
}

/// The folder of `libtorch_cpu.so` in the text of a `/proc/<pid>/maps` file.
pub fn libtorch_dir_in(maps: &str) -> Option<PathBuf> {
    maps.lines()
        .filter_map(|line| line.find('/').map(|i| Path::new(&line[i..])))
        .find(|path| path.file_name().is_some_and(|n| n == "libtorch_cpu.so"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

/// Loads `libtorch_cuda.so` beside the loaded libtorch, once (later calls return the first answer),
/// where an NVIDIA driver is present (or `OODSCOPE_LOAD_CUDA=1` asks for it): on a machine with no
/// driver CUDA cannot run, and loading its libraries would cost ~400 MB of memory and ~0.25 s.
pub fn load_cuda() -> CudaLibrary {
    static ONCE: std::sync::OnceLock<CudaLibrary> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| match libtorch_dir() {
        Some(dir) if dir.join("libtorch_cuda.so").is_file() => {
            if nvidia_driver_present() || std::env::var_os("OODSCOPE_LOAD_CUDA").is_some_and(|v| v == "1") {
                open_global(&dir.join("libtorch_cuda.so"))
            } else {
                CudaLibrary::NoDriver
            }
        }
        _ => CudaLibrary::Absent,
    })
    .clone()
}

/// Whether this machine has an NVIDIA driver (its control device or proc entry; WSL's GPU device).
fn nvidia_driver_present() -> bool {
    [
        "/proc/driver/nvidia/version",
        "/dev/nvidiactl",
        "/dev/nvidia0",
        "/dev/dxg",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
}

/// Loads `libtorch.so` beside the loaded libtorch, once: an AOTInductor package's library needs it
/// by name. It is not linked because it pulls `libtorch_cuda.so`, which an install with the CPU
/// libraries alone does not have; there the package cannot run, and the error says why.
pub fn load_libtorch() -> Result<(), String> {
    static ONCE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let dir = libtorch_dir().ok_or("libtorch_cpu.so is not loaded from a file")?;
        let path = dir.join("libtorch.so");
        if !path.is_file() {
            return Err(format!(
                "AOTInductor packages need libtorch.so, which is not in {} (an install with the CPU \
                 libraries alone: install with --system-torch, or run from the checkout)",
                dir.display()
            ));
        }
        match open_global(&path) {
            CudaLibrary::Failed(path, reason) => Err(format!(
                "AOTInductor packages need {}, which cannot be loaded ({reason})",
                path.display()
            )),
            _ => Ok(()),
        }
    })
    .clone()
}

/// [`load_cuda`], saying in one line on stderr when a CUDA libtorch could not be loaded.
pub fn load_cuda_or_warn() {
    if let CudaLibrary::Failed(path, reason) = load_cuda() {
        eprintln!(
            "oodscope: CUDA disabled: cannot load {} ({reason}); running on the CPU",
            path.display()
        );
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn open_global(path: &Path) -> CudaLibrary {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return CudaLibrary::Failed(path.to_path_buf(), "path holds a NUL byte".into());
    };
    // SAFETY: dlopen with a valid NUL-terminated path; the handle is kept for the process's life
    // (never dlclose'd: libtorch keeps pointers into the library). dlerror's string is copied
    // before any other dl call.
    unsafe {
        let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if handle.is_null() {
            let err = libc::dlerror();
            let reason = if err.is_null() {
                "unknown dlopen error".to_string()
            } else {
                std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned()
            };
            return CudaLibrary::Failed(path.to_path_buf(), reason);
        }
    }
    CudaLibrary::Loaded(path.to_path_buf())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn open_global(path: &Path) -> CudaLibrary {
    CudaLibrary::Failed(
        path.to_path_buf(),
        "loading CUDA at run time needs Linux (glibc)".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_folder_is_read_from_a_memory_map() {
        let maps = "\
55d0c0000000-55d0c0001000 r--p 00000000 fd:01 11 /opt/my app/bin/oodscope
7f0000000000-7f0000100000 r-xp 00000000 fd:01 12 /opt/my app/lib/oodscope/libc10.so
7f0000100000-7f0000200000 r-xp 00000000 fd:01 13 /opt/my app/lib/oodscope/libtorch_cpu.so
7f0000300000-7f0000301000 rw-p 00000000 00:00 0 
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
";
        assert_eq!(libtorch_dir_in(maps), Some(PathBuf::from("/opt/my app/lib/oodscope")));
        assert_eq!(
            libtorch_dir_in("7f0-7f1 r-xp 0 fd:01 1 /usr/lib/libtorch_cpu.so.old\n"),
            None
        );
    }

    #[test]
    fn this_process_maps_libtorch() {
        // The test binary links libtorch_cpu: its folder is found and holds it.
        let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
        let dir = libtorch_dir().expect("libtorch_cpu.so mapped");
        assert!(dir.join("libtorch_cpu.so").is_file(), "{}", dir.display());
    }
}
