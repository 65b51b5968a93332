//! Every file a run writes appears whole or not at all: it is written into a temporary beside its
//! target, `.<name>.tmp-<pid>-<random>` (unique per process and per write, made by the `tempfile`
//! crate), and renamed into place only when complete. A dropped, failed or cancelled write removes
//! its temporary; the leftovers of runs that were killed (SIGKILL, a power cut) are removed the next
//! time any run writes the same target, unless their run is still alive.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

/// A file being written; it appears at its target only through [`AtomicFile::commit`]. Dropped
/// uncommitted, its temporary is removed.
pub struct AtomicFile {
    target: PathBuf,
    /// A plain file: `NamedTempFile`'s own writes would add its path to every error message.
    /// (Declared before `temp`: dropped first, closed before its name is removed.)
    file: Option<BufWriter<File>>,
    /// Removed when dropped (tempfile's `TempPath`), renamed by the commit.
    temp: Option<TempPath>,
}

impl AtomicFile {
    /// Creates the temporary beside `target` (after removing the leftovers of dead runs there).
    /// The temporary is locked while it is written, so no other run takes it for a leftover.
    pub fn create(target: &Path) -> io::Result<AtomicFile> {
        let (dir, name) = split(target)?;
        remove_dead_leftovers(target);
        let mut prefix = leftover_prefix(name);
        prefix.push(format!("{}-", std::process::id()));
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).rand_bytes(8);
        // As `File::create` makes files (0666 less the umask), not tempfile's private 0600: an
        // output is for others to read.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let (file, temp) = builder.tempfile_in(dir)?.into_parts();
        // Advisory only: a run on another machine sharing this folder sees its pid as dead, but the
        // lock as held. A file system without locks leaves the pid as the only check.
        let _ = file.try_lock();
        Ok(AtomicFile {
            target: target.to_path_buf(),
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            temp: Some(temp),
        })
    }

    /// Where the bytes go until the commit.
    pub fn temp_path(&self) -> &Path {
        self.temp.as_deref().unwrap_or(&self.target)
    }

    /// Flushes, syncs and renames the temporary into place.
    pub fn commit(mut self) -> io::Result<()> {
        let (Some(writer), Some(temp)) = (self.file.take(), self.temp.take()) else {
            return Err(io::Error::other("already committed"));
        };
        let file = writer.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        temp.persist(&self.target).map_err(|e| e.error)
    }

    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.file.as_mut().ok_or_else(|| io::Error::other("already committed"))
    }
}

impl Drop for AtomicFile {
    /// An abandoned write: its buffer is discarded, not flushed into a file about to be removed
    /// (on a full disk, or when a run is stopped); the temporary goes with `temp`.
    fn drop(&mut self) {
        if let Some(writer) = self.file.take() {
            drop(writer.into_parts());
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer()?.flush()
    }
}

/// Writes `bytes` to `path` so that readers see the old file or the whole new one, never half.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Removes the temporaries beside `target` left by runs that died before their rename
/// (`.<name>.tmp-<pid>-…` whose process no longer exists and whose lock nobody holds); returns how
/// many. A live run's temporary is never touched. Only where `/proc` tells which processes live.
pub fn remove_dead_leftovers(target: &Path) -> usize {
    let Ok((dir, name)) = split(target) else {
        return 0;
    };
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let prefix = leftover_prefix(name);
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(pid) = leftover_pid(&entry.file_name(), &prefix) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        // A file whose lock is held belongs to a live run elsewhere (another machine on a shared
        // folder, another pid namespace).
        let held = File::open(&path).is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        if !held && entry.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The folder and the file name of a target (`.` for a bare name).
fn split(target: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((dir, name))
}

/// `.<name>.tmp-`: what every temporary of `name` starts with.
fn leftover_prefix(name: &OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp-");
    prefix
}

/// The pid in `<prefix><pid>` or `<prefix><pid>-<anything>` (the form before the random part
/// counts too: `.<name>.tmp-<pid>`), else `None`.
fn leftover_pid(file_name: &OsStr, prefix: &OsStr) -> Option<u32> {
    let rest = file_name.as_encoded_bytes().strip_prefix(prefix.as_encoded_bytes())?;
    let digits = rest.split(|&b| b == b'-').next()?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A pid that belonged to a process that has ended (reaped, so /proc no longer has it).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn only_a_committed_file_appears() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"half").unwrap();
        let temp = f.temp_path().to_path_buf();
        let name = temp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!(".out.bin.tmp-{}-", std::process::id())) && name.len() > 21,
            "{name}"
        );
        drop(f);
        assert!(names(dir.path()).is_empty());
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"whole").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        assert_eq!(names(dir.path()), ["out.bin"]);
    }

    #[test]
    fn two_writes_of_one_target_in_one_process_do_not_share_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("same.csv");
        let mut a = AtomicFile::create(&target).unwrap();
        let mut b = AtomicFile::create(&target).unwrap();
        assert_ne!(a.temp_path(), b.temp_path());
        a.write_all(b"aaaa").unwrap();
        b.write_all(b"bb").unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"aaaa");
        b.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"bb");
    }

    #[cfg(unix)]
    #[test]
    fn outputs_are_readable_by_others_as_file_create_makes_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        File::create(&plain).unwrap();
        let atomic = dir.path().join("atomic");
        write_atomically(&atomic, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
    }

    #[test]
    fn replaces_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new contents").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new contents");
        assert_eq!(names(dir.path()), ["out.txt"]);
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomically(&dir.path().join("missing-dir/out.txt"), b"x").is_err());
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn leftovers_of_dead_runs_go_and_those_of_live_runs_stay() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.csv");
        let dead = dead_pid();
        let live = std::process::id();
        let files = [
            format!(".s.csv.tmp-{dead}-a1B2c3"),
            format!(".s.csv.tmp-{dead}"),
            format!(".s.csv.tmp-{live}-d4E5f6"),
            format!(".other.csv.tmp-{dead}-a1B2c3"),
            ".s.csv.tmp-notapid".to_string(),
            "s.csv".to_string(),
        ];
        for f in &files {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        assert_eq!(remove_dead_leftovers(&target), 2);
        let mut kept = vec![files[2].clone(), files[3].clone(), files[4].clone(), files[5].clone()];
        kept.sort();
        assert_eq!(names(dir.path()), kept);
        // Writing the target cleans the same way.
        std::fs::write(dir.path().join(&files[0]), b"x").unwrap();
        write_atomically(&target, b"new").unwrap();
        assert_eq!(names(dir.path()), kept);
    }

    #[test]
    fn a_locked_leftover_is_a_live_run_elsewhere_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("r.parquet");
        let leftover = dir.path().join(format!(".r.parquet.tmp-{}-zzzzzz", dead_pid()));
        std::fs::write(&leftover, b"x").unwrap();
        let holder = File::open(&leftover).unwrap();
        holder.lock().unwrap();
        assert_eq!(remove_dead_leftovers(&target), 0);
        assert!(leftover.exists());
        drop(holder);
        assert_eq!(remove_dead_leftovers(&target), 1);
        assert!(!leftover.exists());
    }

    #[test]
    fn pids_are_read_from_both_forms() {
        let prefix = leftover_prefix(OsStr::new("a.csv"));
        assert_eq!(leftover_pid(OsStr::new(".a.csv.tmp-123-xY"), &prefix), Some(123));
        assert_eq!(leftover_pid(OsStr::new(".a.csv.tmp-77"), &prefix), Some(77));
        assert_eq!(leftover_pid(OsStr::new(".a.csv.tmp-"), &prefix), None);
        assert_eq!(leftover_pid(OsStr::new(".a.csv.tmp-x1"), &prefix), None);
        assert_eq!(leftover_pid(OsStr::new(".a.csvx.tmp-1"), &prefix), None);
    }
}
