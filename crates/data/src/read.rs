//! Reading an image file's bytes: regular files only, within the size limit. A FIFO, a device or
//! a socket (directly or through a symbolic link) is never opened: opening a FIFO blocks until a
//! writer comes, and a device such as `/dev/zero` never ends.

use std::fs::{File, FileType};
use std::io::Read;
use std::path::Path;

use super::limits::SkipReason;

/// What a file that is not a regular file (nor a folder) is, in words: `Some("a FIFO")`, …;
/// `None` for a regular file or a folder. `ft` is the type after following links.
pub fn special_kind(ft: &FileType) -> Option<&'static str> {
    if ft.is_file() || ft.is_dir() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if ft.is_char_device() {
            return Some("a character device");
        }
        if ft.is_block_device() {
            return Some("a block device");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
    }
    Some("a special file")
}

/// The reason a special file is skipped: `not a regular file: a FIFO (named pipe)`, with `through a
/// symbolic link` when the name is a link to it.
pub fn special_reason(kind: &str, through_link: bool) -> String {
    if through_link {
        format!("not a regular file: a symbolic link to {kind}")
    } else {
        format!("not a regular file: {kind}")
    }
}

/// The bytes of the image file `path`: refused with a reason when it is not a regular file, is
/// empty or larger than `max_bytes`. The type is checked before opening (following links), and
/// again on the opened file (opened non-blocking), so a file swapped for a FIFO in between is
/// still never read.
pub fn read_image_bytes(path: &Path, max_bytes: u64) -> Result<Vec<u8>, SkipReason> {
    let cannot = |e: std::io::Error| SkipReason(format!("cannot read: {e}"));
    let regular = |ft: &FileType| match special_kind(ft) {
        Some(kind) => {
            let through_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            Err(SkipReason(special_reason(kind, through_link)))
        }
        None if ft.is_dir() => Err(SkipReason("a folder, not a file".into())),
        None => Ok(()),
    };
    regular(&std::fs::metadata(path).map_err(cannot)?.file_type())?;
    let file = open_without_blocking(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    regular(&meta.file_type())?;
    let size = meta.len();
    if size == 0 {
        return Err(SkipReason("empty file (0 bytes)".into()));
    }
    if size > max_bytes {
        return Err(over_limit(size, max_bytes));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > max_bytes {
        return Err(over_limit(bytes.len() as u64, max_bytes));
    }
    Ok(bytes)
}

fn over_limit(size: u64, max_bytes: u64) -> SkipReason {
    SkipReason(format!(
        "file is {} MB, over the {} MB limit",
        size >> 20,
        max_bytes >> 20
    ))
}

#[cfg(unix)]
fn open_without_blocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; a regular
    // file reads as usual.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_without_blocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
        assert!(status.success());
    }

    #[test]
    fn a_fifo_and_a_link_to_a_device_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.png");
        mkfifo(&fifo);
        let err = read_image_bytes(&fifo, 1 << 20).unwrap_err();
        assert_eq!(err.0, "not a regular file: a FIFO (named pipe)");
        let zero = dir.path().join("zero.png");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = read_image_bytes(&zero, 1 << 20).unwrap_err();
        assert_eq!(err.0, "not a regular file: a symbolic link to a character device");
    }

    #[test]
    fn a_regular_file_is_read_within_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.png");
        std::fs::write(&file, [7u8; 3000]).unwrap();
        assert_eq!(read_image_bytes(&file, 1 << 20).unwrap().len(), 3000);
        let err = read_image_bytes(&file, 2048).unwrap_err();
        assert_eq!(err.0, "file is 0 MB, over the 0 MB limit");
        std::fs::write(&file, []).unwrap();
        assert_eq!(read_image_bytes(&file, 1 << 20).unwrap_err().0, "empty file (0 bytes)");
    }
}
