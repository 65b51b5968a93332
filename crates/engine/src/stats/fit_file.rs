//! The fit file: safetensors (read with the `safetensors` crate), its JSON header's `__metadata__`
//! holding the provenance. Writing streams: the header is written first from the tensors' shapes,
//! then each tensor's bytes in order, so a KNN bank of any size never sits in memory. (The crate's
//! own writer asks every tensor for its bytes at once.) The file appears under its name only when
//! complete (a temporary file of its own beside it, renamed into place), so two runs writing the
//! same file both succeed; a cancelled or failed write leaves nothing behind.
//!
//! The header's `tensors_sha256` is the SHA-256 of every byte after the header (the tensors' data,
//! in file order), hashed as the writer writes them and patched into its place in the header at
//! the end; [`Reader::check_digest`] reads the data back once and compares.
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorInfo};
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use crate::output::AtomicFile;

/// The header's metadata key of the digest of the tensors' data.
pub const DIGEST_KEY: &str = "tensors_sha256";
/// What the header holds at [`DIGEST_KEY`] until the data is written (as long as a hex SHA-256).
const DIGEST_PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A tensor the writer will receive, in order.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl Entry {
    pub fn f64(name: &str, shape: &[usize]) -> Self {
        Entry {
            name: name.into(),
            dtype: Dtype::F64,
            shape: shape.to_vec(),
        }
    }

    pub fn f32(name: &str, shape: &[usize]) -> Self {
        Entry {
            name: name.into(),
            dtype: Dtype::F32,
            shape: shape.to_vec(),
        }
    }

    pub fn i64(name: &str, shape: &[usize]) -> Self {
        Entry {
            name: name.into(),
            dtype: Dtype::I64,
            shape: shape.to_vec(),
        }
    }

    /// Raw bytes (a JSON document, an embedded file), as a U8 vector.
    pub fn u8(name: &str, len: usize) -> Self {
        Entry {
            name: name.into(),
            dtype: Dtype::U8,
            shape: vec![len],
        }
    }

    fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

#[derive(serde::Serialize)]
struct Header<'a> {
    #[serde(rename = "__metadata__")]
    metadata: &'a BTreeMap<String, String>,
    #[serde(flatten)]
    tensors: BTreeMap<String, TensorInfo>,
}

/// Writes a fit file tensor by tensor, into a temporary file of its own beside `path` (unique per
/// process and per write: [`AtomicFile`]), renamed to `path` by [`Writer::finish`].
pub struct Writer {
    out: AtomicFile,
    /// The digest of the data so far, and where its hex digits go in the file.
    hasher: Sha256,
    digest_at: u64,
    entries: Vec<Entry>,
    /// Index of the entry being written, and its bytes so far.
    current: usize,
    written: usize,
}

impl Writer {
    /// Writes the header for `entries` (their data must follow in this order), with `metadata` and
    /// a place for the digest.
    pub fn create(path: &Path, entries: Vec<Entry>, metadata: &BTreeMap<String, String>) -> std::io::Result<Writer> {
        let mut metadata = metadata.clone();
        metadata.insert(DIGEST_KEY.into(), DIGEST_PLACEHOLDER.into());
        let mut tensors = BTreeMap::new();
        let mut offset = 0;
        for e in &entries {
            let end = offset + e.bytes();
            tensors.insert(
                e.name.clone(),
                TensorInfo {
                    dtype: e.dtype,
                    shape: e.shape.clone(),
                    data_offsets: (offset, end),
                },
            );
            offset = end;
        }
        let mut header = serde_json::to_string(&Header {
            metadata: &metadata,
            tensors,
        })
        .map_err(std::io::Error::other)?;
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        // The key and its value, as JSON writes them (the other values are JSON strings, whose
        // quotes are escaped: this sequence occurs once).
        let slot = format!("\"{DIGEST_KEY}\":\"{DIGEST_PLACEHOLDER}\"");
        let digest_at = header
            .find(&slot)
            .map(|at| 8 + (at + slot.len() - 1 - DIGEST_PLACEHOLDER.len()) as u64)
            .ok_or_else(|| std::io::Error::other("the header has no place for the digest"))?;
        let mut out = AtomicFile::create(path)?;
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(header.as_bytes())?;
        // Empty tensors take no bytes: the first to receive data is the first non-empty one.
        let current = entries.iter().take_while(|e| e.bytes() == 0).count();
        Ok(Writer {
            out,
            hasher: Sha256::new(),
            digest_at,
            entries,
            current,
            written: 0,
        })
    }

    /// Appends values of the current tensor (moving to the next once it is full).
    pub fn write_f32(&mut self, values: &[f32]) -> std::io::Result<()> {
        self.write_values(Dtype::F32, values, f32::to_le_bytes)
    }

    pub fn write_f64(&mut self, values: &[f64]) -> std::io::Result<()> {
        self.write_values(Dtype::F64, values, f64::to_le_bytes)
    }

    pub fn write_i64(&mut self, values: &[i64]) -> std::io::Result<()> {
        self.write_values(Dtype::I64, values, i64::to_le_bytes)
    }

    /// Appends bytes of the current U8 tensor.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_raw(Dtype::U8, bytes)
    }

    /// Appends the current tensor's data as stored bytes of its type (copied from another file).
    pub fn write_raw(&mut self, dtype: Dtype, bytes: &[u8]) -> std::io::Result<()> {
        self.expect(dtype, bytes.len())?;
        self.hasher.update(bytes);
        self.out.write_all(bytes)
    }

    /// Values of `dtype` as little-endian bytes (safetensors' byte order).
    fn write_values<T: Copy, const N: usize>(
        &mut self,
        dtype: Dtype,
        values: &[T],
        le_bytes: fn(T) -> [u8; N],
    ) -> std::io::Result<()> {
        self.expect(dtype, values.len() * N)?;
        let bytes: Vec<u8> = values.iter().flat_map(|&v| le_bytes(v)).collect();
        self.hasher.update(&bytes);
        self.out.write_all(&bytes)
    }

    /// A whole tensor's values (converted to the entry's type).
    pub fn write_tensor(&mut self, t: &Tensor) -> std::io::Result<()> {
        let flat = t
            .f_to_device(Device::Cpu)
            .and_then(|t| t.f_contiguous())
            .and_then(|t| t.f_view([-1]))
            .map_err(std::io::Error::other)?;
        match self.entries.get(self.current).map(|e| e.dtype) {
            Some(Dtype::F64) => {
                let v = Vec::<f64>::try_from(flat.f_to_kind(Kind::Double).map_err(std::io::Error::other)?)
                    .map_err(std::io::Error::other)?;
                self.write_f64(&v)
            }
            Some(Dtype::I64) => {
                let v = Vec::<i64>::try_from(flat.f_to_kind(Kind::Int64).map_err(std::io::Error::other)?)
                    .map_err(std::io::Error::other)?;
                self.write_i64(&v)
            }
            _ => {
                let v = Vec::<f32>::try_from(flat.f_to_kind(Kind::Float).map_err(std::io::Error::other)?)
                    .map_err(std::io::Error::other)?;
                self.write_f32(&v)
            }
        }
    }

    fn expect(&mut self, dtype: Dtype, bytes: usize) -> std::io::Result<()> {
        let entry = self
            .entries
            .get(self.current)
            .ok_or_else(|| std::io::Error::other("more data than the header announced"))?;
        if entry.dtype != dtype || self.written + bytes > entry.bytes() {
            return Err(std::io::Error::other(format!(
                "tensor `{}`: data does not match its announced {:?} {:?}",
                entry.name, entry.dtype, entry.shape
            )));
        }
        self.written += bytes;
        if self.written == entry.bytes() {
            self.current += 1;
            self.written = 0;
            // Skip empty tensors.
            while self.entries.get(self.current).is_some_and(|e| e.bytes() == 0) {
                self.current += 1;
            }
        }
        Ok(())
    }

    /// Checks that every announced byte was written, writes the digest into the header, syncs, and
    /// renames the file into place (replacing what is there at once: a reader sees the old file
    /// or the new one, whole). Returns the digest (hex).
    pub fn finish(mut self) -> std::io::Result<String> {
        while self.entries.get(self.current).is_some_and(|e| e.bytes() == 0) {
            self.current += 1;
        }
        if self.current != self.entries.len() {
            return Err(std::io::Error::other(format!(
                "tensor `{}` was not written in full",
                self.entries[self.current].name
            )));
        }
        self.out.flush()?;
        let digest = format!("{:x}", self.hasher.finalize());
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.out.temp_path())?
            .write_all_at(digest.as_bytes(), self.digest_at)?;
        // The commit syncs the file (its data, whichever handle wrote it) before the rename.
        self.out.commit()?;
        Ok(digest)
    }
}

/// Why the data of a file does not check out against its digest.
#[derive(Debug)]
pub enum DigestError {
    /// The header has no digest (a file made before digests, or edited).
    Missing,
    /// The data does not hash to the digest: changed since it was written.
    Mismatch,
    /// The data could not be read.
    Io(std::io::Error),
}

/// A fit file opened for reading: its header parsed by the `safetensors` crate (over a memory map,
/// so opening reads only the header); tensors are read on demand.
pub struct Reader {
    file: File,
    data_start: u64,
    data_end: u64,
    tensors: HashMap<String, TensorInfo>,
    pub metadata: HashMap<String, String>,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, String> {
        let file = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
        // SAFETY: the map is only read, and dropped before this function returns.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot read it: {e}"))?;
        let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&map)
            .map_err(|e| format!("not a safetensors file (or truncated): {e:?}"))?;
        let tensors: HashMap<String, TensorInfo> = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, info.clone()))
            .collect();
        Ok(Reader {
            data_start: 8 + header_len as u64,
            data_end: map.len() as u64,
            tensors,
            metadata: metadata.metadata().clone().unwrap_or_default(),
            file,
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The names of every tensor in the file.
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.tensors.keys().cloned().collect()
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|i| i.shape.as_slice())
    }

    /// Where a tensor's bytes start in the file, and its shape.
    pub fn location(&self, name: &str) -> Option<(u64, Vec<usize>, Dtype)> {
        let info = self.tensors.get(name)?;
        Some((
            self.data_start + info.data_offsets.0 as u64,
            info.shape.clone(),
            info.dtype,
        ))
    }

    /// A whole tensor, on the CPU, in its stored type.
    pub fn tensor(&self, name: &str) -> Result<Tensor, String> {
        let info = self.tensors.get(name).ok_or_else(|| format!("no tensor `{name}`"))?;
        let (start, end) = info.data_offsets;
        let mut bytes = vec![0u8; end - start];
        self.file
            .read_exact_at(&mut bytes, self.data_start + start as u64)
            .map_err(|e| format!("tensor `{name}`: {}", crate::model::first_line(&e.to_string())))?;
        let kind = match info.dtype {
            Dtype::F64 => Kind::Double,
            Dtype::F32 => Kind::Float,
            Dtype::I64 => Kind::Int64,
            other => return Err(format!("tensor `{name}` has an unexpected type {other:?}")),
        };
        let shape: Vec<i64> = info.shape.iter().map(|&s| s as i64).collect();
        Tensor::f_from_data_size(&bytes, &shape, kind)
            .map_err(|e| format!("tensor `{name}`: {}", crate::model::first_line(&e.to_string())))
    }

    /// A U8 tensor's bytes (a JSON document, an embedded file).
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>, String> {
        let info = self.tensors.get(name).ok_or_else(|| format!("no `{name}`"))?;
        if info.dtype != Dtype::U8 || info.shape.len() != 1 {
            return Err(format!(
                "`{name}` is {:?} {:?}, not a byte vector",
                info.dtype, info.shape
            ));
        }
        let (start, end) = info.data_offsets;
        let mut bytes = vec![0u8; end - start];
        self.file
            .read_exact_at(&mut bytes, self.data_start + start as u64)
            .map_err(|e| format!("`{name}`: {}", crate::model::first_line(&e.to_string())))?;
        Ok(bytes)
    }

    /// Reads `len` bytes at `offset` (a block of the bank).
    pub fn read_at(&self, buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buffer, offset)
    }

    /// The digest the header records, if any.
    pub fn digest(&self) -> Option<&str> {
        self.metadata.get(DIGEST_KEY).map(String::as_str)
    }

    /// Reads every byte of the tensors' data once (in blocks: a bank that stays on disk is never
    /// held in memory) and compares its SHA-256 with the header's. Returns the digest.
    pub fn check_digest(&self) -> Result<String, DigestError> {
        let expected = self.digest().ok_or(DigestError::Missing)?.to_string();
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 4 << 20];
        let mut at = self.data_start;
        while at < self.data_end {
            let len = ((self.data_end - at) as usize).min(buffer.len());
            self.file
                .read_exact_at(&mut buffer[..len], at)
                .map_err(DigestError::Io)?;
            hasher.update(&buffer[..len]);
            at += len as u64;
        }
        if format!("{:x}", hasher.finalize()) == expected {
            Ok(expected)
        } else {
            Err(DigestError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_file_reads_back_and_a_dropped_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.safetensors");
        let meta: BTreeMap<String, String> = [("format".to_string(), "test".to_string())].into();
        let entries = vec![
            Entry::f32("bank", &[3, 2]),
            Entry::f64("mean", &[2]),
            Entry::i64("counts", &[2]),
        ];
        let mut w = Writer::create(&path, entries.clone(), &meta).unwrap();
        w.write_f32(&[1.0, 2.0]).unwrap();
        w.write_f32(&[3.0, 4.0, 5.0, 6.0]).unwrap();
        w.write_f64(&[0.5, -0.5]).unwrap();
        assert!(w.write_f64(&[1.0]).is_err(), "wrong type for `counts`");
        w.write_i64(&[7, 8]).unwrap();
        w.finish().unwrap();
        // Python's safetensors and tch read it too; here, the crate and the reader.
        let all = Tensor::read_safetensors(&path).unwrap();
        assert_eq!(all.len(), 3);
        let r = Reader::open(&path).unwrap();
        assert_eq!(r.metadata["format"], "test");
        assert_eq!(Vec::<f64>::try_from(r.tensor("mean").unwrap()).unwrap(), [0.5, -0.5]);
        assert_eq!(r.shape("bank"), Some(&[3usize, 2][..]));

        // An empty tensor first (a shard with no images): the data goes to the next one.
        let leading = dir.path().join("e.safetensors");
        let mut w = Writer::create(
            &leading,
            vec![Entry::f32("rows", &[0, 2]), Entry::f64("m", &[1])],
            &meta,
        )
        .unwrap();
        w.write_f64(&[2.5]).unwrap();
        w.finish().unwrap();
        let r = Reader::open(&leading).unwrap();
        assert_eq!(r.shape("rows"), Some(&[0usize, 2][..]));
        assert_eq!(Vec::<f64>::try_from(r.tensor("m").unwrap()).unwrap(), [2.5]);

        let unfinished = dir.path().join("g.safetensors");
        let mut w = Writer::create(&unfinished, entries, &meta).unwrap();
        w.write_f32(&[1.0]).unwrap();
        assert!(w.finish().is_err());
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["e.safetensors", "f.safetensors"], "nothing else is left behind");
    }

    /// A small file written by the writer, with its bytes.
    fn written(path: &Path) -> Vec<u8> {
        let meta: BTreeMap<String, String> = [("format".to_string(), "test".to_string())].into();
        let mut w = Writer::create(path, vec![Entry::f32("bank", &[4, 2]), Entry::i64("n", &[1])], &meta).unwrap();
        w.write_f32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).unwrap();
        w.write_i64(&[4]).unwrap();
        let digest = w.finish().unwrap();
        let bytes = std::fs::read(path).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let data = &bytes[8 + header_len..];
        assert_eq!(
            digest,
            format!("{:x}", Sha256::digest(data)),
            "the digest is of the data"
        );
        bytes
    }

    #[test]
    fn the_digest_covers_every_byte_of_the_data_and_only_that() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.safetensors");
        let bytes = written(&path);
        let r = Reader::open(&path).unwrap();
        let digest = r.check_digest().unwrap();
        assert_eq!(r.digest(), Some(digest.as_str()));
        // Python's safetensors and tch still read the file (the digest is one more metadata value).
        assert_eq!(Tensor::read_safetensors(&path).unwrap().len(), 2);
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for at in [8 + header_len, bytes.len() - 1, 8 + header_len + 17] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            std::fs::write(&path, &damaged).unwrap();
            let r = Reader::open(&path).unwrap();
            assert!(matches!(r.check_digest(), Err(DigestError::Mismatch)), "byte {at}");
        }
        // A header without a digest (a file of an older oodscope) says so.
        let tensor = Tensor::from_slice(&[1f32, 2.0]);
        Tensor::write_safetensors(&[("t", &tensor)], &path).unwrap();
        let r = Reader::open(&path).unwrap();
        assert!(matches!(r.check_digest(), Err(DigestError::Missing)));
    }

    #[test]
    fn two_writers_of_one_file_at_once_both_finish_and_leave_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.safetensors");
        let meta: BTreeMap<String, String> = [("format".to_string(), "test".to_string())].into();
        let entries = vec![Entry::f32("bank", &[2, 2])];
        let mut a = Writer::create(&path, entries.clone(), &meta).unwrap();
        let mut b = Writer::create(&path, entries, &meta).unwrap();
        a.write_f32(&[1.0, 2.0]).unwrap();
        b.write_f32(&[5.0, 6.0, 7.0, 8.0]).unwrap();
        a.write_f32(&[3.0, 4.0]).unwrap();
        b.finish().unwrap();
        a.finish().unwrap();
        let r = Reader::open(&path).unwrap();
        r.check_digest().unwrap();
        assert_eq!(
            Vec::<f32>::try_from(r.tensor("bank").unwrap().view([-1])).unwrap(),
            [1.0, 2.0, 3.0, 4.0],
            "the last to finish"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
