//! What a model file is, read from its content (never its name), and for every format that
//! oodscope does not run (all but TorchScript, and AOTInductor packages with their card) the one
//! command (scripts/export_model.py) that turns it into an oodscope model.
//!
//! Recognised: TorchScript, torch.export programs and AOTInductor packages (`.pt2` zips with an
//! `archive_format` entry), `torch.save` files (zip and the legacy pickle format) holding a whole
//! `nn.Module` or a state_dict / checkpoint, safetensors, ONNX (a protobuf `ModelProto` with an
//! `ir_version` and a `graph`), and things that are no model at all (images, text, empty files).
//!
//! `torch.save` files are told apart by their pickle: a module's starts with its class (`GLOBAL
//! torch.nn.modules.container Sequential`), a state_dict with `collections OrderedDict` or a dict.
//! The pickle is walked opcode by opcode by hand (about 60 lines): the pickle crates on crates.io
//! either refuse arbitrary `GLOBAL`s (serde-pickle) or would add a dependency for a scan that needs
//! only the opcode lengths; nothing is executed or reconstructed, only names are read. Zip archives
//! are read with the `zip` crate (already in the build through tch).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    TorchScript,
    /// `torch.export.save`: a program with its weights, run by the Python runtime.
    ExportedProgram,
    /// `torch._inductor.aoti_compile_and_package`: compiled code for one device.
    AotInductor,
    /// `torch.save(model)`: a whole pickled module; the class as `module.Name`.
    PickledModule {
        class: String,
        legacy: bool,
    },
    /// `torch.save(model.state_dict())` or a checkpoint dict holding one.
    StateDict {
        legacy: bool,
    },
    /// Some other `torch.save` object (a tensor, a list…): its first class when there is one.
    OtherPickle {
        class: Option<String>,
    },
    Safetensors,
    Onnx,
    /// A zip archive that is no PyTorch file.
    Zip,
    Image(&'static str),
    Text,
    Empty,
    Unknown,
}

/// Reads what `path` holds; `Err` only when it cannot be read at all.
pub fn detect(path: &Path) -> std::io::Result<Format> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Format::Empty);
    }
    let mut head = vec![0u8; len.min(4096) as usize];
    file.read_exact(&mut head)?;
    if head.starts_with(b"PK\x03\x04") {
        return Ok(zip_format(file));
    }
    if head.starts_with(LEGACY_MAGIC) {
        return Ok(legacy_format(file, len));
    }
    if let Some(kind) = image_kind(&head) {
        return Ok(Format::Image(kind));
    }
    if is_safetensors(&mut file, &head, len) {
        return Ok(Format::Safetensors);
    }
    if is_onnx(&mut file, len) {
        return Ok(Format::Onnx);
    }
    if head.first() == Some(&0x80) && head.get(1).is_some_and(|p| (2..=5).contains(p)) {
        return Ok(classify_pickle(&scan_pickle(&head, 1), false));
    }
    if !head.contains(&0) && std::str::from_utf8(&head).is_ok() {
        return Ok(Format::Text);
    }
    Ok(Format::Unknown)
}

/// What a folder given as a model is, and what to run: a Hugging Face `save_pretrained` folder
/// (its `config.json`) is exported with `hf:DIR`; any other folder is named as not a model.
pub fn folder_hint(path: &Path) -> String {
    let out = path.with_extension("pt");
    if path.join("config.json").is_file() {
        format!(
            "a folder with a config.json (a Hugging Face model saved with save_pretrained?), not a model file; export it with: python scripts/export_model.py --model hf:{} --out {}",
            path.display(),
            out.display()
        )
    } else {
        "a folder, not a model file: --model takes a TorchScript .pt (with its card <stem>.toml beside it) or the card itself".into()
    }
}

/// The one-line message for a model file that is not TorchScript: what it is and the exporter
/// command that makes an oodscope model of it. `None` for TorchScript (and unreadable files, whose
/// own error says more).
pub fn hint(path: &Path) -> Option<String> {
    let format = detect(path).ok()?;
    let file = path.display();
    let out = suggested_output(path);
    let exporter = "python scripts/export_model.py";
    let arch = "torchvision:NAME|timm:NAME|your_module:build_fn";
    let weights_only = |what: &str| {
        format!(
            "{what} (weights only, no network), not TorchScript; export it with the architecture it belongs to: {exporter} --model {arch} --weights {file} --out {out}"
        )
    };
    Some(match format {
        Format::TorchScript => return None,
        Format::ExportedProgram => format!(
            "a torch.export program (.pt2), not TorchScript (oodscope runs TorchScript through libtorch); export the network it came from, with the weights read from this file: {exporter} --model {arch} --weights {file} --out {out}"
        ),
        Format::AotInductor => format!(
            "an AOTInductor package (.pt2) without its card {}: oodscope runs packages (inference only) with a card beside them; export the network with both: {exporter} --model {arch} --weights STATE_DICT --format aoti --out {}",
            path.with_extension("toml").display(),
            path.with_extension("pt2").display()
        ),
        Format::PickledModule { class, legacy } => format!(
            "a whole nn.Module ({class}) pickled with torch.save(model){}, not TorchScript; export it with: {exporter} --model pickle:{file} --out {out}{}",
            if legacy { " in the legacy format" } else { "" },
            if is_module_library(&class) {
                String::new()
            } else {
                format!(" (the code that defines {class} must be importable: add --model-path DIR)")
            }
        ),
        Format::StateDict { legacy } => weights_only(if legacy {
            "a state_dict saved with torch.save in the legacy format"
        } else {
            "a state_dict saved with torch.save"
        }),
        Format::OtherPickle { class } => format!(
            "a torch.save file holding {}, not a model; oodscope needs TorchScript: {exporter} --model {arch} --out {out} makes one",
            match class {
                Some(c) if c.starts_with("torch._utils._rebuild_tensor") => "a tensor".to_string(),
                Some(c) => format!("a {c}"),
                None => "no module".to_string(),
            }
        ),
        Format::Safetensors => weights_only("a safetensors file"),
        Format::Onnx => format!(
            "an ONNX model, not TorchScript; convert it with: {exporter} --model onnx:{file} --classes classes.txt --out {out}"
        ),
        Format::Zip => "a zip archive that is no PyTorch file (no data.pkl, code/ or archive_format inside)".into(),
        Format::Image(kind) => format!(
            "a {kind} image, not a model: --model takes a TorchScript .pt (with its card) and the images go in --id / --ood folders"
        ),
        Format::Text => "a text file, not a TorchScript file: --model takes a TorchScript .pt (with its card <stem>.toml beside it) or the card itself".into(),
        Format::Empty => "an empty file, not a model".into(),
        Format::Unknown => format!(
            "not a TorchScript file, nor any model format oodscope recognises; make one with {exporter} (see README, \"Your own model\")"
        ),
    })
}

/// `<dir>/<stem>-torchscript.pt`: beside the file, never over it.
fn suggested_output(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    path.with_file_name(format!("{stem}-torchscript.pt"))
        .display()
        .to_string()
}

// ------------------------------------------------------------------------------ zip archives

fn zip_format(file: File) -> Format {
    let Ok(mut archive) = zip::ZipArchive::new(file) else {
        return Format::Unknown;
    };
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let has = |suffix: &str| names.iter().any(|n| n.ends_with(suffix));
    if has("/constants.pkl") || names.iter().any(|n| n.contains("/code/__torch__")) {
        return Format::TorchScript;
    }
    if has("archive_format") {
        return if names.iter().any(|n| n.contains("data/aotinductor/")) {
            Format::AotInductor
        } else {
            Format::ExportedProgram
        };
    }
    let Some(pickle) = names.iter().find(|n| n.ends_with("data.pkl")) else {
        return Format::Zip;
    };
    let mut bytes = Vec::new();
    let read = archive
        .by_name(pickle)
        .map(|entry| entry.take(PICKLE_SCAN_LIMIT).read_to_end(&mut bytes));
    match read {
        Ok(Ok(_)) => classify_pickle(&scan_pickle(&bytes, 1), false),
        _ => Format::Unknown,
    }
}

// ------------------------------------------------------------------------------ pickles

/// The legacy `torch.save` format (`_use_new_zipfile_serialization=False`): pickles of the magic
/// number, the protocol version and the system info, then the object.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
const PICKLE_SCAN_LIMIT: u64 = 1 << 20;

fn legacy_format(mut file: File, len: u64) -> Format {
    let mut bytes = vec![0u8; len.min(PICKLE_SCAN_LIMIT) as usize];
    if file.seek(SeekFrom::Start(0)).is_err() || file.read_exact(&mut bytes).is_err() {
        return Format::Unknown;
    }
    let scan = scan_pickle(&bytes, 4);
    if scan.first_op.is_none() {
        return Format::Unknown;
    }
    classify_pickle(&scan, true)
}

/// What a scan of the object's pickle found.
#[derive(Debug, Default)]
struct PickleScan {
    /// The object's first opcode after PROTO/FRAME.
    first_op: Option<u8>,
    /// Its GLOBAL / STACK_GLOBAL names as `module.Name`, in order (the first few dozen).
    globals: Vec<String>,
    truncated: bool,
}

/// Walks `bytes` and reads the globals of pickle number `nth` (1-based; earlier ones are skipped).
fn scan_pickle(bytes: &[u8], nth: usize) -> PickleScan {
    let mut scan = PickleScan::default();
    let mut pos = 0;
    // The last two strings pushed, for STACK_GLOBAL.
    let mut strings: Vec<String> = Vec::new();
    let mut index = 1;
    while pos < bytes.len() && scan.globals.len() < 64 {
        let op = bytes[pos];
        pos += 1;
        let wanted = index == nth;
        if wanted && scan.first_op.is_none() && op != 0x80 && op != 0x95 {
            scan.first_op = Some(op);
        }
        let Some(arg) = pickle_arg(op, &bytes[pos..]) else {
            scan.truncated = true;
            return scan;
        };
        let body = &bytes[pos..pos + arg.len];
        pos += arg.len;
        match op {
            b'.' => {
                if wanted {
                    return scan;
                }
                index += 1;
                strings.clear();
            }
            b'c' if wanted => {
                let text = String::from_utf8_lossy(body);
                let mut parts = text.split('\n');
                let module = parts.next().unwrap_or_default();
                let name = parts.next().unwrap_or_default();
                scan.globals.push(format!("{module}.{name}"));
            }
            0x93 if wanted && strings.len() >= 2 => {
                let name = strings.pop().unwrap_or_default();
                let module = strings.pop().unwrap_or_default();
                scan.globals.push(format!("{module}.{name}"));
            }
            b'X' | 0x8c | 0x8d | b'V' if wanted => {
                let text = String::from_utf8_lossy(&body[arg.prefix..])
                    .trim_end_matches('\n')
                    .to_string();
                strings.push(text);
                if strings.len() > 2 {
                    strings.remove(0);
                }
            }
            _ => {}
        }
    }
    // Out of bytes, or enough globals read, before the object's STOP.
    scan.truncated = true;
    scan
}

/// The bytes an opcode's argument takes: `len` in all, the first `prefix` of them a length field.
struct Arg {
    len: usize,
    prefix: usize,
}

/// The argument of opcode `op` at the start of `rest`; `None` past the end or for an unknown op.
fn pickle_arg(op: u8, rest: &[u8]) -> Option<Arg> {
    let fixed = |len: usize| (len <= rest.len()).then_some(Arg { len, prefix: 0 });
    let sized = |width: usize| {
        let field = rest.get(..width)?;
        let mut n = 0u64;
        for (i, b) in field.iter().enumerate() {
            n |= u64::from(*b) << (8 * i);
        }
        let len = width.checked_add(usize::try_from(n).ok()?)?;
        (len <= rest.len()).then_some(Arg { len, prefix: width })
    };
    let lines = |count: usize| {
        let mut end = 0;
        for _ in 0..count {
            end += rest.get(end..)?.iter().position(|&b| b == b'\n')? + 1;
        }
        Some(Arg { len: end, prefix: 0 })
    };
    match op {
        // No argument.
        b'(' | b'.' | b'0' | b'1' | b'2' | b'N' | b']' | b'a' | b'e' | b'b' | b'd' | b'}' | b'l' | b'R' | b's'
        | b'u' | b't' | b')' | b'o' | b'Q' | 0x81 | 0x85 | 0x86 | 0x87 | 0x88 | 0x89 | 0x8f | 0x90 | 0x91 | 0x92
        | 0x93 | 0x94 | 0x97 | 0x98 => fixed(0),
        b'K' | b'h' | b'q' | 0x80 | 0x82 => fixed(1),
        b'M' | 0x83 => fixed(2),
        b'J' | b'j' | b'r' | 0x84 => fixed(4),
        b'G' | 0x95 => fixed(8),
        b'U' | 0x8c | b'C' | 0x8a => sized(1),
        b'T' | b'X' | b'B' | 0x8b => sized(4),
        0x8d | 0x8e | 0x96 => sized(8),
        b'I' | b'L' | b'S' | b'V' | b'F' | b'P' | b'g' | b'p' => lines(1),
        b'c' | b'i' => lines(2),
        _ => None,
    }
}

/// Globals that carry data (containers, tensors, storages), not a network.
fn is_data_global(name: &str) -> bool {
    const DATA: &[&str] = &[
        "collections.",
        "builtins.",
        "__builtin__.",
        "torch._utils.",
        "torch._tensor.",
        "torch.serialization.",
        "_codecs.",
        "copyreg.",
        "numpy.",
        "torch.nn.parameter.",
    ];
    DATA.iter().any(|p| name.starts_with(p)) || (name.starts_with("torch.") && !name.starts_with("torch.nn."))
}

fn classify_pickle(scan: &PickleScan, legacy: bool) -> Format {
    let first_class = scan.globals.first();
    let dict_like = scan.first_op == Some(b'}') || first_class.is_some_and(|g| g == "collections.OrderedDict");
    // A module pickles its class first, then its children's (torch.nn.modules.*).
    let first_model_class = scan.globals.iter().find(|g| !is_data_global(g));
    let holds_modules = scan.globals.iter().any(|g| is_module_library(g));
    match (dict_like, first_model_class) {
        // A checkpoint dict that holds a whole module (`{"model": model}`) is a module; one with
        // other objects (an `argparse.Namespace` of hyper-parameters) is still a checkpoint.
        (true, Some(class)) if holds_modules => Format::PickledModule {
            class: class.clone(),
            legacy,
        },
        (true, _) => Format::StateDict { legacy },
        (false, Some(class)) if first_class == Some(class) => Format::PickledModule {
            class: class.clone(),
            legacy,
        },
        (false, _) => Format::OtherPickle {
            class: first_class.cloned(),
        },
    }
}

/// Classes of the libraries whose objects are networks.
fn is_module_library(name: &str) -> bool {
    name.starts_with("torch.nn.modules.") || name.starts_with("torchvision.models.") || name.starts_with("timm.models.")
}

// ------------------------------------------------------------------------------ other formats

fn image_kind(head: &[u8]) -> Option<&'static str> {
    let kinds: [(&[u8], &str); 7] = [
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"\xff\xd8\xff", "JPEG"),
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"BM", "BMP"),
        (b"II*\0", "TIFF"),
        (b"MM\0*", "TIFF"),
    ];
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some("WebP");
    }
    kinds
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, kind)| *kind)
}

/// An 8-byte little-endian header length, then that many bytes of JSON object.
fn is_safetensors(file: &mut File, head: &[u8], len: u64) -> bool {
    let Some(size) = head
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    else {
        return false;
    };
    if head.get(8) != Some(&b'{') || size < 2 || size > len - 8 || size > 100 << 20 {
        return false;
    }
    let mut json = vec![0u8; size as usize];
    if file.seek(SeekFrom::Start(8)).is_err() || file.read_exact(&mut json).is_err() {
        return false;
    }
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json).is_ok()
}

/// An ONNX `ModelProto`: top-level protobuf fields that parse exactly to the end of the file, the
/// first being `ir_version` (field 1, a varint of a plausible version), with a `graph` (field 7,
/// length-delimited). Field bodies are skipped by their length, so a large model is not read.
fn is_onnx(file: &mut File, len: u64) -> bool {
    if file.seek(SeekFrom::Start(0)).is_err() {
        return false;
    }
    let mut reader = std::io::BufReader::new(file);
    let mut pos = 0u64;
    let mut first = true;
    let mut has_graph = false;
    while pos < len {
        let Some((key, n)) = read_varint(&mut reader) else {
            return false;
        };
        pos += n;
        let (field, wire) = (key >> 3, key & 7);
        if first {
            if key != 0x08 {
                return false;
            }
            let Some((version, n)) = read_varint(&mut reader) else {
                return false;
            };
            if !(1..=64).contains(&version) {
                return false;
            }
            pos += n;
            first = false;
            continue;
        }
        // ModelProto's fields and their wire types (onnx.proto3).
        let expected = match field {
            1 | 5 => 0,
            2 | 3 | 4 | 6 | 7 | 8 | 14 | 20 | 25 | 26 => 2,
            _ => return false,
        };
        if wire != expected {
            return false;
        }
        if wire == 0 {
            let Some((_, n)) = read_varint(&mut reader) else {
                return false;
            };
            pos += n;
        } else {
            let Some((size, n)) = read_varint(&mut reader) else {
                return false;
            };
            pos += n;
            if size > len - pos || reader.seek_relative(size as i64).is_err() {
                return false;
            }
            pos += size;
            has_graph |= field == 7;
        }
    }
    pos == len && has_graph
}

/// A protobuf varint and the bytes it took.
fn read_varint(reader: &mut impl Read) -> Option<(u64, u64)> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut byte = [0u8];
        reader.read_exact(&mut byte).ok()?;
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn pickles_are_told_apart_by_their_first_class() {
        // torch.save(model) / torch.save(state_dict) / a checkpoint dict, protocol 2 heads.
        let module = b"\x80\x02ctorch.nn.modules.container\nSequential\nq\x00)\x81q\x01}q\x02.";
        let state = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x08\x00\x00\x000.weightq\x02ctorch._utils\n_rebuild_tensor_v2\nq\x03u.";
        let checkpoint = b"\x80\x02}q\x00(X\n\x00\x00\x00state_dictq\x01ccollections\nOrderedDict\nq\x02)Rq\x03u.";
        assert_eq!(
            classify_pickle(&scan_pickle(module, 1), false),
            Format::PickledModule {
                class: "torch.nn.modules.container.Sequential".into(),
                legacy: false
            }
        );
        assert_eq!(
            classify_pickle(&scan_pickle(state, 1), false),
            Format::StateDict { legacy: false }
        );
        assert_eq!(
            classify_pickle(&scan_pickle(checkpoint, 1), false),
            Format::StateDict { legacy: false }
        );
        // STACK_GLOBAL (protocol 4) reads the two strings before it.
        let stack = b"\x80\x04\x8c\x08__main__\x94\x8c\x03Net\x94\x93\x94)\x81.";
        assert_eq!(
            classify_pickle(&scan_pickle(stack, 1), false),
            Format::PickledModule {
                class: "__main__.Net".into(),
                legacy: false
            }
        );
    }

    #[test]
    fn non_models_are_named_and_nothing_panics_on_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect(&write(dir.path(), "e.pt", b"")).unwrap(), Format::Empty);
        assert_eq!(
            detect(&write(dir.path(), "t.pt", b"name = \"x\"\n")).unwrap(),
            Format::Text
        );
        assert_eq!(
            detect(&write(dir.path(), "i.pt", b"\x89PNG\r\n\x1a\n\0\0")).unwrap(),
            Format::Image("PNG")
        );
        // Truncated or random bytes of every leading kind: a format or Unknown, never a panic.
        for seed in 0u32..200 {
            let mut bytes: Vec<u8> = (0..(seed % 37)).map(|i| (i.wrapping_mul(seed) % 251) as u8).collect();
            let leads: [&[u8]; 5] = [
                b"PK\x03\x04",
                LEGACY_MAGIC,
                b"\x08\x07\x12",
                b"\x80\x02",
                b"\x10\0\0\0\0\0\0\0{",
            ];
            bytes.splice(0..0, leads[seed as usize % 5].iter().copied());
            let path = write(dir.path(), "g.pt", &bytes);
            let _ = detect(&path);
            let _ = hint(&path);
        }
    }

    #[test]
    fn a_small_onnx_model_proto_is_recognised() {
        // ir_version 8, producer "pytorch", graph {node...} (field 7, 3 bytes), opset_import (field 8).
        let bytes = b"\x08\x08\x12\x07pytorch\x3a\x03\x0a\x01x\x42\x02\x10\x11";
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect(&write(dir.path(), "m.bin", bytes)).unwrap(), Format::Onnx);
        // Without a graph, or with trailing bytes, it is not.
        assert_ne!(
            detect(&write(dir.path(), "n.bin", b"\x08\x08\x12\x07pytorch")).unwrap(),
            Format::Onnx
        );
        assert_ne!(
            detect(&write(dir.path(), "o.bin", b"\x08\x08\x3a\x03\x0a\x01x\xff")).unwrap(),
            Format::Onnx
        );
    }
}
