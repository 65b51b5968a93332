//! A model file's zip archive (TorchScript, an AOTInductor package) checked before libtorch reads
//! it: every entry is read to its end, so that the `zip` crate compares its bytes with the CRC-32
//! the archive records. libtorch does not: a TorchScript file whose weights were overwritten loads,
//! and every score it gives is wrong.
//!
//! The cost is one more read of the file, with CRC-32 by `crc32fast` (SIMD) on the way.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// Checks every entry of the zip archive at `path` against its CRC-32; `Err` names the first that
/// does not match (or cannot be read), in one line without the file's name (the caller gives it).
/// A file that is no zip archive passes: its loader says what it is.
pub fn check_crcs(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let Ok(mut archive) = zip::ZipArchive::new(BufReader::with_capacity(1 << 20, file)) else {
        return Ok(());
    };
    let mut buffer = vec![0u8; 1 << 20];
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| {
            format!("entry {i} of its zip archive cannot be read ({e}); export or copy the model again")
        })?;
        let name = entry.name().to_string();
        loop {
            match entry.read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The zip crate says a CRC mismatch only in its message ("Invalid checksum");
                    // any other error is a damaged entry too, said as it is.
                    let why = if e.to_string().contains("checksum") {
                        "does not match its CRC-32: the file was changed after it was written".to_string()
                    } else {
                        format!("cannot be read ({e})")
                    };
                    return Err(format!(
                        "damaged: the entry `{name}` of its zip archive {why}; export or copy the model again"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A zip archive of two stored entries; returns the offset of the second entry's data.
    fn archive(path: &Path) -> usize {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        let stored = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("m/code.py", stored).unwrap();
        zip.write_all(b"def forward(self, x): return x").unwrap();
        zip.start_file("m/data/0", stored).unwrap();
        zip.write_all(&[7u8; 4096]).unwrap();
        zip.finish().unwrap();
        let bytes = std::fs::read(path).unwrap();
        bytes.windows(4096).position(|w| w.iter().all(|&b| b == 7)).unwrap()
    }

    #[test]
    fn an_overwritten_entry_is_named_and_an_intact_archive_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.pt");
        let data = archive(&path);
        assert_eq!(check_crcs(&path), Ok(()));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[data + 100..data + 164].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let e = check_crcs(&path).unwrap_err();
        assert!(
            e.contains("the entry `m/data/0` of its zip archive does not match its CRC-32"),
            "{e}"
        );
        // Not a zip archive: for the loader to say what it is.
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(check_crcs(&path), Ok(()));
    }
}
