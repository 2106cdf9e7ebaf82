//! The tensors of a mask file, read lazily: a safetensors file is read once and each tensor
//! checked as its mask is built; a `.npy` file is read when its mask is built.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::sparsity::Mask;
use crate::spec::{sha256_hex, sha256_hex_of};

/// One tensor of a mask file.
pub(super) struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    body: Body,
}

enum Body {
    /// Little-endian, C order, at `start` of a file read whole (safetensors).
    Bytes {
        bytes: Arc<Vec<u8>>,
        start: usize,
        elem: Elem,
    },
    /// A `.npy` file, read when its mask is built.
    Npy(PathBuf),
}

/// Element types a mask may be stored as: booleans, integers or floats, each 0 or 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Bool,
    U8,
    I8,
    U16,
    I16,
    F16,
    BF16,
    U32,
    I32,
    F32,
    U64,
    I64,
    F64,
}

impl Elem {
    fn bytes(self) -> usize {
        match self {
            Elem::Bool | Elem::U8 | Elem::I8 => 1,
            Elem::U16 | Elem::I16 | Elem::F16 | Elem::BF16 => 2,
            Elem::U32 | Elem::I32 | Elem::F32 => 4,
            Elem::U64 | Elem::I64 | Elem::F64 => 8,
        }
    }

    /// The element at the start of `b` (little-endian): `Ok(kept)` for 0 or 1 (a float's −0
    /// too), else its value as text.
    #[inline(always)]
    fn kept(self, b: &[u8]) -> Result<bool, String> {
        let bits: u64 = match self.bytes() {
            1 => u64::from(b[0]),
            2 => u64::from(u16::from_le_bytes([b[0], b[1]])),
            4 => u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            _ => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        };
        let (zero, one, negative_zero) = match self {
            Elem::F16 => (0, 0x3c00, Some(0x8000)),
            Elem::BF16 => (0, 0x3f80, Some(0x8000)),
            Elem::F32 => (0, 0x3f80_0000, Some(0x8000_0000)),
            Elem::F64 => (0, 0x3ff0_0000_0000_0000, Some(0x8000_0000_0000_0000)),
            _ => (0, 1, None),
        };
        if bits == one {
            Ok(true)
        } else if bits == zero || Some(bits) == negative_zero {
            Ok(false)
        } else {
            Err(self.show(bits))
        }
    }

    /// Whether the element is 0 or 1, as its raw bits (the error path kept out of the loop).
    #[inline(always)]
    fn one_or_zero(self, b: &[u8]) -> Option<bool> {
        match self {
            Elem::Bool | Elem::U8 | Elem::I8 => match b[0] {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            },
            _ => self.kept(b).ok(),
        }
    }

    fn show(self, bits: u64) -> String {
        match self {
            Elem::F32 => f32::from_bits(bits as u32).to_string(),
            Elem::F64 => f64::from_bits(bits).to_string(),
            Elem::F16 | Elem::BF16 => format!("{bits:#06x} (as {self:?} bits)"),
            Elem::I8 => (bits as u8 as i8).to_string(),
            Elem::I16 => (bits as u16 as i16).to_string(),
            Elem::I32 => (bits as u32 as i32).to_string(),
            Elem::I64 => (bits as i64).to_string(),
            _ => bits.to_string(),
        }
    }
}

/// Where a mask's entries are in a 2-D tensor, as its C-order indices (a Fortran-order `.npy`
/// stores the same array column by column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// Entry `(r, c)` is element `[r, offset + c]` (`[in, out]` weights, Q, K and V side by
    /// side in a fused tensor).
    Rows { offset: usize },
    /// Entry `(r, c)` is element `[c, r]` (`nn.Linear`'s `[out, in]`).
    Transposed,
}

impl Tensor {
    /// The `rows × cols` mask laid out in this tensor as `layout` says, or why not: the first
    /// element that is not 0 or 1. Whichever way the tensor stores it, the mask is packed
    /// along the stored lines, 64 entries at a time, and transposed by blocks when those are
    /// its columns.
    pub fn mask(
        &self,
        rows: usize,
        cols: usize,
        layout: Layout,
    ) -> std::result::Result<Mask, String> {
        let (bytes, start, elem, fortran) = match &self.body {
            Body::Bytes { bytes, start, elem } => (Arc::clone(bytes), *start, *elem, false),
            Body::Npy(path) => {
                let npy = read_npy(path)?;
                if npy.shape != self.shape {
                    return Err(format!(
                        "{}: shape {:?} now, {:?} when the folder was read: the file changed",
                        path.display(),
                        npy.shape,
                        self.shape
                    ));
                }
                (Arc::new(npy.bytes), npy.start, npy.elem, npy.fortran)
            }
        };
        let height = self.shape.first().copied().unwrap_or(1);
        let width = self.shape.get(1).copied().unwrap_or(1);
        // Stored lines: element `first(l) + j` (in storage order) is entry `j` of line `l`;
        // `by_rows`: the lines are the mask's rows, else its columns.
        let (by_rows, first): (bool, Box<dyn Fn(usize) -> usize>) = match (layout, fortran) {
            (Layout::Rows { offset }, false) => (true, Box::new(move |r| r * width + offset)),
            (Layout::Rows { offset }, true) => (false, Box::new(move |c| (offset + c) * height)),
            (Layout::Transposed, false) => (false, Box::new(move |c| c * width)),
            (Layout::Transposed, true) => (true, Box::new(move |r| r * height)),
        };
        let (lines, length) = if by_rows { (rows, cols) } else { (cols, rows) };
        let size = elem.bytes();
        let packed = Mask::from_rows(lines, length, |l, words| {
            let at = start + first(l) * size;
            pack_line(elem, &bytes[at..at + length * size], words).map_err(|j| first(l) + j)
        });
        match packed {
            Ok(mask) if by_rows => Ok(mask),
            Ok(mask) => Ok(mask.transposed()),
            Err(stored) => {
                let value = elem
                    .kept(&bytes[start + stored * size..][..size])
                    .err()
                    .unwrap_or_default();
                let (i, j) = if fortran {
                    (stored % height, stored / height)
                } else {
                    (stored / width, stored % width)
                };
                Err(format!(
                    "value {value} at [{i}, {j}]: a mask holds 0 (dropped) and 1 (kept) only"
                ))
            }
        }
    }
}

/// Packs a line of elements into bits (`words`, zeroed: element `j` at bit `j % 64` of word
/// `j / 64`), or the index of the first element that is not 0 or 1. One-byte elements go eight
/// at a time: a word of bytes each 0 or 1 times `0x0102_0408_1020_4080` has byte `i`'s bit at
/// bit `56 + i` and no carries (each byte's bit lands on its own position).
fn pack_line(elem: Elem, data: &[u8], words: &mut [u64]) -> std::result::Result<(), usize> {
    const LOW_BITS: u64 = 0x0101_0101_0101_0101;
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let size = elem.bytes();
    for (w, word) in words.iter_mut().enumerate() {
        let chunk = &data[(w * 64 * size).min(data.len())..((w + 1) * 64 * size).min(data.len())];
        let mut bits = 0u64;
        let mut clean = true;
        if size == 1 {
            let mut eights = chunk.chunks_exact(8);
            let mut stray = 0u64;
            for (b, eight) in eights.by_ref().enumerate() {
                let x = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
                stray |= x & !LOW_BITS;
                bits |= (x.wrapping_mul(GATHER) >> 56) << (8 * b);
            }
            let done = chunk.len() / 8 * 8;
            for (j, &byte) in eights.remainder().iter().enumerate() {
                stray |= u64::from(byte & !1);
                bits |= u64::from(byte & 1) << (done + j);
            }
            clean = stray == 0;
        } else {
            for (j, element) in chunk.chunks_exact(size).enumerate() {
                match elem.one_or_zero(element) {
                    Some(kept) => bits |= u64::from(kept) << j,
                    None => clean = false,
                }
            }
        }
        if !clean {
            let bad = chunk
                .chunks_exact(size)
                .position(|element| elem.one_or_zero(element).is_none())
                .expect("a stray element");
            return Err(w * 64 + bad);
        }
        *word = bits;
    }
    Ok(())
}

/// The tensors of a safetensors file and the file's SHA-256.
pub(super) fn read_safetensors(path: &str) -> Result<(Vec<Tensor>, String)> {
    let bytes = std::fs::read(path).map_err(|e| Error::Input(format!("{path}: {e}")))?;
    let sha256 = sha256_hex(&bytes);
    let bytes = Arc::new(bytes);
    let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
        Error::Input(format!(
            "{path}: not a safetensors file ({e}); give a .safetensors file or a folder \
             of .npy files"
        ))
    })?;
    let data_start = 8 + header_len;
    let mut tensors = Vec::new();
    let mut infos: Vec<(String, &safetensors::tensor::TensorInfo)> =
        metadata.tensors().into_iter().collect();
    infos.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, info) in infos {
        use safetensors::Dtype;
        let elem = match info.dtype {
            Dtype::BOOL => Elem::Bool,
            Dtype::U8 => Elem::U8,
            Dtype::I8 => Elem::I8,
            Dtype::U16 => Elem::U16,
            Dtype::I16 => Elem::I16,
            Dtype::F16 => Elem::F16,
            Dtype::BF16 => Elem::BF16,
            Dtype::U32 => Elem::U32,
            Dtype::I32 => Elem::I32,
            Dtype::F32 => Elem::F32,
            Dtype::U64 => Elem::U64,
            Dtype::I64 => Elem::I64,
            Dtype::F64 => Elem::F64,
            other => {
                // Only a tensor that is a mask must have a mask's dtype.
                if super::WeightName::parse(&name).is_some() {
                    return Err(Error::Input(format!(
                        "{path}: tensor `{name}`: dtype {other:?}; a mask is BOOL, an integer \
                         or a float type holding 0 and 1"
                    )));
                }
                continue;
            }
        };
        tensors.push(Tensor {
            name,
            shape: info.shape.clone(),
            body: Body::Bytes {
                bytes: Arc::clone(&bytes),
                start: data_start + info.data_offsets.0,
                elem,
            },
        });
    }
    Ok((tensors, sha256))
}

/// The tensors of a folder's `.npy` files (each named by its file's stem) and the folder's
/// SHA-256: of every file's name and SHA-256, one per line, in name order.
pub(super) fn read_npy_folder(path: &str) -> Result<(Vec<Tensor>, String)> {
    let refuse = |what: String| Error::Input(format!("{path}: {what}"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| refuse(e.to_string()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(refuse(
            "a folder without .npy files; give one file per sparse weight, named as its \
             tensor (e.g. transformer.h.0.mlp.c_fc.weight.npy), or a .safetensors file"
                .into(),
        ));
    }
    // Each file read, hashed and its header parsed in parallel; then taken in name order.
    let read: Vec<_> = files
        .par_iter()
        .map(|file| {
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let unreadable = |e: std::io::Error| refuse(format!("{}: {e}", file.display()));
            // The header now, for the shape (the data when the mask is built), and the file's
            // SHA-256 streamed: a folder's files are not held.
            let (head, length) = npy_head(file).map_err(unreadable)?;
            let sha256 = sha256_hex_of(std::fs::File::open(file).map_err(unreadable)?)
                .map_err(unreadable)?;
            let npy = parse_npy(&head, length)
                .map_err(|e| Error::Input(format!("{}: tensor `{name}`: {e}", file.display())));
            Ok((name, sha256, npy))
        })
        .collect();
    let mut listing = String::new();
    let mut tensors = Vec::new();
    for (file, read) in files.into_iter().zip(read) {
        let (name, sha256, npy) = read?;
        listing.push_str(&format!("{name} {sha256}\n"));
        match npy {
            Ok(npy) => tensors.push(Tensor {
                name,
                shape: npy.shape,
                body: Body::Npy(file),
            }),
            // A file that is no mask of ours may hold anything.
            Err(e) if super::WeightName::parse(&name).is_some() => return Err(e),
            Err(_) => {}
        }
    }
    Ok((tensors, sha256_hex(listing.as_bytes())))
}

/// A `.npy` file's contents.
struct Npy {
    bytes: Vec<u8>,
    start: usize,
    elem: Elem,
    shape: Vec<usize>,
    fortran: bool,
}

fn read_npy(path: &Path) -> std::result::Result<Npy, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    parse_npy(&bytes, bytes.len()).map(|npy| Npy { bytes, ..npy })
}

/// The header of a `.npy` file (its preamble says how long: a 16-bit length after the magic and
/// version in format 1, 32-bit in 2 and 3), and the file's length.
fn npy_head(path: &Path) -> std::io::Result<(Vec<u8>, usize)> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    let mut reader = file.take(length);
    let mut head = Vec::new();
    (&mut reader).take(12).read_to_end(&mut head)?;
    let header_bytes = match head.get(6) {
        Some(1) if head.len() >= 10 => 10 + u64::from(u16::from_le_bytes([head[8], head[9]])),
        Some(2 | 3) if head.len() >= 12 => {
            12 + u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]]))
        }
        // Not a .npy preamble: what was read is enough for the parser to say so.
        _ => 0,
    };
    let rest = header_bytes.saturating_sub(head.len() as u64);
    reader.take(rest).read_to_end(&mut head)?;
    Ok((head, length as usize))
}

/// The header of a `.npy` file of `length` bytes that begins with `bytes` (its bytes left
/// empty).
fn parse_npy(bytes: &[u8], length: usize) -> std::result::Result<Npy, String> {
    let mut reader = bytes;
    let header =
        npyz::NpyHeader::from_reader(&mut reader).map_err(|e| format!("not a .npy file ({e})"))?;
    let start = bytes.len() - reader.len();
    let npyz::DType::Plain(type_str) = header.dtype() else {
        return Err("a structured dtype; a mask is one boolean or number per weight".into());
    };
    let text = type_str.to_string();
    let elem = match text.trim_start_matches(['<', '>', '|', '=']) {
        "b1" => Elem::Bool,
        "u1" => Elem::U8,
        "i1" => Elem::I8,
        "u2" => Elem::U16,
        "i2" => Elem::I16,
        "f2" => Elem::F16,
        "u4" => Elem::U32,
        "i4" => Elem::I32,
        "f4" => Elem::F32,
        "u8" => Elem::U64,
        "i8" => Elem::I64,
        "f8" => Elem::F64,
        _ => {
            return Err(format!(
            "dtype {text}; a mask is bool, an integer or a float (little-endian) holding 0 and 1"
        ))
        }
    };
    if text.starts_with('>') && elem.bytes() > 1 {
        return Err(format!(
            "big-endian dtype {text}; save the mask little-endian"
        ));
    }
    let shape: Vec<usize> = header.shape().iter().map(|&d| d as usize).collect();
    let size = shape
        .iter()
        .try_fold(elem.bytes(), |bytes, &d| bytes.checked_mul(d))
        .filter(|&size| size <= length - start);
    if size != Some(length - start) {
        return Err(format!(
            "{} bytes of data for shape {shape:?} of {text}: the file is cut short or has bytes \
             beyond its array",
            length - start
        ));
    }
    Ok(Npy {
        bytes: Vec::new(),
        start,
        elem,
        shape,
        fortran: header.order() == npyz::Order::Fortran,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `[height, width]` `.npy` of `descr` in the temporary folder, element `[a, b]` equal to
    /// `value(a, b)` (0, 1 or anything else), stored in C or Fortran order.
    fn npy(
        name: &str,
        (descr, size): (&str, usize),
        [height, width]: [usize; 2],
        fortran: bool,
        value: impl Fn(usize, usize) -> i16,
    ) -> Tensor {
        let element = |v: i16| -> Vec<u8> {
            match descr {
                "<f4" => (v as f32).to_le_bytes().to_vec(),
                "<i2" => v.to_le_bytes().to_vec(),
                _ => vec![v as u8],
            }
        };
        let mut data = Vec::with_capacity(height * width * size);
        if fortran {
            (0..width).for_each(|b| (0..height).for_each(|a| data.extend(element(value(a, b)))));
        } else {
            (0..height).for_each(|a| (0..width).for_each(|b| data.extend(element(value(a, b)))));
        }
        let header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({height}, {width}), }}\n",
            if fortran { "True" } else { "False" }
        );
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        let path = std::env::temp_dir().join(format!(
            "wafersim-tensor-{}-{name}-{descr}-{fortran}.npy",
            std::process::id()
        ));
        std::fs::write(&path, bytes).unwrap();
        Tensor {
            name: name.into(),
            shape: vec![height, width],
            body: Body::Npy(path),
        }
    }

    #[test]
    fn a_header_is_read_to_its_stated_length_in_every_format_and_no_further() {
        let dir = std::env::temp_dir();
        let dict = "{'descr': '|b1', 'fortran_order': False, 'shape': (2, 3), }";
        for version in [1u8, 2] {
            // A header padded past 64 KiB, as no mask needs but the format allows in 2.0.
            let padding = if version == 2 { 70_000 } else { 100 };
            let header = format!("{dict}{}\n", " ".repeat(padding));
            let mut bytes = b"\x93NUMPY".to_vec();
            bytes.extend([version, 0]);
            match version {
                1 => bytes.extend((header.len() as u16).to_le_bytes()),
                _ => bytes.extend((header.len() as u32).to_le_bytes()),
            }
            let preamble = bytes.len();
            bytes.extend(header.as_bytes());
            bytes.extend([1, 0, 1, 0, 1, 0]);
            let path = dir.join(format!(
                "wafersim-head-{}-v{version}.npy",
                std::process::id()
            ));
            std::fs::write(&path, &bytes).unwrap();
            let (head, length) = npy_head(&path).unwrap();
            assert_eq!((head.len(), length), (preamble + header.len(), bytes.len()));
            let npy = parse_npy(&head, length).unwrap();
            assert_eq!((npy.shape, npy.start), (vec![2, 3], head.len()));
            std::fs::remove_file(&path).unwrap();
        }
        let path = dir.join(format!("wafersim-head-{}-text.npy", std::process::id()));
        std::fs::write(&path, "not an array at all, but long enough").unwrap();
        let (head, _) = npy_head(&path).unwrap();
        assert_eq!(
            head.len(),
            12,
            "the preamble's worth, for the parser to refuse"
        );
        let refused = parse_npy(&head, 36).err().expect("refused");
        assert!(refused.starts_with("not a .npy file"), "{refused}");
        std::fs::remove_file(&path).unwrap();
    }

    const DTYPES: [(&str, usize); 3] = [("|b1", 1), ("<f4", 4), ("<i2", 2)];

    fn kept(a: usize, b: usize) -> i16 {
        i16::from((a * 31 + b * 17) % 5 < 2)
    }

    #[test]
    fn every_layout_and_storage_order_reads_the_entries_it_names() {
        let (rows, cols) = (70, 45);
        for dtype in DTYPES {
            for fortran in [false, true] {
                // Q, K, V side by side: the second block of 45 columns is this weight's.
                let fused = npy("fused", dtype, [rows, 100], fortran, kept);
                let mask = fused.mask(rows, cols, Layout::Rows { offset: 45 }).unwrap();
                let (r, c) = (0..rows, 0..cols);
                let entries = |m: &Mask, at: &dyn Fn(usize, usize) -> bool| {
                    r.clone()
                        .all(|i| c.clone().all(|j| m.get(i, j) == at(i, j)))
                };
                assert!(
                    entries(&mask, &|i, j| kept(i, 45 + j) == 1),
                    "{dtype:?} {fortran}"
                );
                let linear = npy("linear", dtype, [cols, rows], fortran, kept);
                let mask = linear.mask(rows, cols, Layout::Transposed).unwrap();
                assert!(
                    entries(&mask, &|i, j| kept(j, i) == 1),
                    "{dtype:?} {fortran}"
                );
                if let Body::Npy(path) = fused.body {
                    std::fs::remove_file(path).unwrap();
                }
                if let Body::Npy(path) = linear.body {
                    std::fs::remove_file(path).unwrap();
                }
            }
        }
    }

    #[test]
    fn the_first_stray_value_is_named_by_its_index_in_the_tensor() {
        for dtype in DTYPES {
            for fortran in [false, true] {
                let stray = |a, b| if (a, b) == (9, 50) { 2 } else { kept(a, b) };
                let fused = npy("stray-fused", dtype, [70, 100], fortran, stray);
                let error = fused.mask(70, 45, Layout::Rows { offset: 45 }).unwrap_err();
                assert!(
                    error.starts_with("value 2 at [9, 50]:"),
                    "{dtype:?}: {error}"
                );
                let linear = npy("stray-linear", dtype, [60, 70], fortran, stray);
                let error = linear.mask(70, 60, Layout::Transposed).unwrap_err();
                assert!(
                    error.starts_with("value 2 at [9, 50]:"),
                    "{dtype:?}: {error}"
                );
                for tensor in [fused, linear] {
                    if let Body::Npy(path) = tensor.body {
                        std::fs::remove_file(path).unwrap();
                    }
                }
            }
        }
    }
}
