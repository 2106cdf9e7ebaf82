//! `.npz` files: numpy's zip of `.npy` arrays, one per name, which `np.load(path)` opens as a
//! dict of named arrays. wafersim's counters are written this way (`counters.npz` of `train`,
//! `kernel --counters`).
//!
//! Written here rather than with `npyz`'s `npz` feature, which pulls in `zip` 0.6 with its
//! default features (zstd and bzip2 built from C, AES, and file times taken from the clock,
//! so two runs would not give the same bytes): an uncompressed zip of a few `.npy` entries, as
//! `numpy.savez` writes one, is short. Entries are stored (no compression), dated 1980-01-01
//! 00:00 (the zip epoch), in the order given: the same arrays give the same bytes.
//!
//! The reader takes what this writer writes and what `numpy.savez` writes for the same dtypes
//! (stored entries, `.npy` format 1.0 to 3.0, little-endian `u8`/`f8`/`U`, C order), and refuses
//! anything else with a reason; callers name the file.

use std::collections::BTreeMap;

/// One array: its shape (empty for a scalar) and its values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<u64>,
    pub data: NpyData,
}

/// The element types wafersim writes: counts, ratios, and names.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    U64(Vec<u64>),
    F64(Vec<f64>),
    /// Fixed-width unicode (`<U`); every string ASCII here.
    Text(Vec<String>),
}

impl NpyArray {
    pub fn u64s(shape: Vec<u64>, values: Vec<u64>) -> Self {
        NpyArray {
            shape,
            data: NpyData::U64(values),
        }
    }

    pub fn f64s(shape: Vec<u64>, values: Vec<f64>) -> Self {
        NpyArray {
            shape,
            data: NpyData::F64(values),
        }
    }

    pub fn scalar_u64(value: u64) -> Self {
        Self::u64s(Vec::new(), vec![value])
    }

    /// A single string (a 0-d array: `np.load(p)["model"].item()`).
    pub fn text(value: &str) -> Self {
        NpyArray {
            shape: Vec::new(),
            data: NpyData::Text(vec![value.to_string()]),
        }
    }

    pub fn texts(values: Vec<String>) -> Self {
        NpyArray {
            shape: vec![values.len() as u64],
            data: NpyData::Text(values),
        }
    }

    /// The `.npy` file of this array: magic, version 1.0, the header padded to 64 bytes, data.
    #[cfg(test)]
    fn npy_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_npy(&mut out);
        out
    }

    /// Appends the `.npy` file of this array to `out` (no copy of the values on the way).
    fn write_npy(&self, out: &mut Vec<u8>) {
        let width = match &self.data {
            NpyData::Text(v) => v
                .iter()
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                .max(1),
            _ => 0,
        };
        let descr = match &self.data {
            NpyData::U64(_) => "<u8".to_string(),
            NpyData::F64(_) => "<f8".to_string(),
            NpyData::Text(_) => format!("<U{width}"),
        };
        let shape = match self.shape.len() {
            0 => "()".to_string(),
            1 => format!("({},)", self.shape[0]),
            _ => format!(
                "({})",
                self.shape
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // Magic (6) + version (2) + length (2) + header + '\n', to a multiple of 64.
        let unpadded = 10 + header.len() + 1;
        header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
        header.push('\n');
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        match &self.data {
            NpyData::U64(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            NpyData::F64(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            NpyData::Text(v) => {
                for s in v {
                    let chars = s.chars().map(u32::from).chain(std::iter::repeat(0));
                    out.extend(chars.take(width).flat_map(|c| c.to_le_bytes()));
                }
            }
        }
    }
}

/// Builds an `.npz` in memory, one array at a time (an array can be dropped once added). The
/// zip needs no zip64: an entry or the file beyond 4 GiB is an error, which no counters file
/// reaches (`train` refuses grids beyond 4 GiB in memory, 44 bytes per PE against 16 here).
#[derive(Default)]
pub struct NpzWriter {
    out: Vec<u8>,
    central: Vec<u8>,
    entries: u16,
}

impl NpzWriter {
    pub fn add(&mut self, name: &str, array: &NpyArray) -> Result<(), String> {
        let file_name = format!("{name}.npy");
        let offset = zip32(self.out.len(), "the file")?;
        // The local header's CRC and sizes are known once the data is written: reserve them.
        let header_at = self.out.len();
        self.out.extend_from_slice(&[0u8; 30]);
        self.out.extend_from_slice(file_name.as_bytes());
        let data_at = self.out.len();
        array.write_npy(&mut self.out);
        let size = zip32(self.out.len() - data_at, &file_name)?;
        let crc = crc32fast::hash(&self.out[data_at..]);
        let common = entry_fields(crc, size, file_name.len());
        let header = &mut self.out[header_at..header_at + 30];
        header[..4].copy_from_slice(&0x0403_4b50u32.to_le_bytes());
        header[4..28].copy_from_slice(&common);
        // Bytes 28..30: no extra field.
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&20u16.to_le_bytes()); // made by: version 2.0
        c.extend_from_slice(&common);
        // Extra, comment, disk, internal and external attributes, then the entry's offset.
        c.extend_from_slice(&[0u8; 12]);
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(file_name.as_bytes());
        self.entries = self
            .entries
            .checked_add(1)
            .ok_or("more than 65,535 arrays")?;
        Ok(())
    }

    /// The file's bytes: the entries, their directory, its end record.
    pub fn finish(mut self) -> Result<Vec<u8>, String> {
        let central_offset = zip32(self.out.len(), "the file")?;
        let central_size = zip32(self.central.len(), "the directory")?;
        self.out.extend_from_slice(&self.central);
        let out = &mut self.out;
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]); // this disk, the directory's disk
        out.extend_from_slice(&self.entries.to_le_bytes());
        out.extend_from_slice(&self.entries.to_le_bytes());
        out.extend_from_slice(&central_size.to_le_bytes());
        out.extend_from_slice(&central_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // comment length
        Ok(self.out)
    }
}

/// The bytes of an `.npz` holding `arrays` under their names, in order.
pub fn npz_bytes(arrays: &[(String, NpyArray)]) -> Result<Vec<u8>, String> {
    let mut writer = NpzWriter::default();
    for (name, array) in arrays {
        writer.add(name, array)?;
    }
    writer.finish()
}

/// The fields a local header and a directory entry share, from "version needed" to the name's
/// length: version 2.0, no flags, stored, 1980-01-01 00:00, the CRC and sizes.
fn entry_fields(crc: u32, size: u32, name_len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(24);
    f.extend_from_slice(&20u16.to_le_bytes());
    f.extend_from_slice(&0u16.to_le_bytes()); // flags
    f.extend_from_slice(&0u16.to_le_bytes()); // stored
    f.extend_from_slice(&0u16.to_le_bytes()); // time 00:00:00
    f.extend_from_slice(&0x0021u16.to_le_bytes()); // date: 1980, month 1, day 1
    f.extend_from_slice(&crc.to_le_bytes());
    f.extend_from_slice(&size.to_le_bytes()); // compressed
    f.extend_from_slice(&size.to_le_bytes()); // uncompressed
    f.extend_from_slice(&(name_len as u16).to_le_bytes());
    f
}

fn zip32(n: usize, what: &str) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("{what} would pass 4 GiB, beyond a zip without zip64"))
}

/// The arrays of an `.npz` by name (the entry's name without `.npy`).
pub fn read_npz(bytes: &[u8]) -> Result<BTreeMap<String, NpyArray>, String> {
    let end = (0..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| bytes[i..].starts_with(&0x0605_4b50u32.to_le_bytes()))
        .ok_or("not an .npz file (no zip directory)")?;
    if end + 22 + u16le(bytes, end + 20)? as usize != bytes.len() {
        return Err("bytes after the zip directory".into());
    }
    let entries = u16le(bytes, end + 10)? as usize;
    let mut at = u32le(bytes, end + 16)? as usize;
    let mut arrays = BTreeMap::new();
    for _ in 0..entries {
        if u32le(bytes, at)? != 0x0201_4b50 {
            return Err("a corrupted zip directory".into());
        }
        let method = u16le(bytes, at + 10)?;
        let crc = u32le(bytes, at + 16)?;
        let size = u32le(bytes, at + 20)? as usize;
        let name_len = u16le(bytes, at + 28)? as usize;
        let skip = name_len + u16le(bytes, at + 30)? as usize + u16le(bytes, at + 32)? as usize;
        let offset = u32le(bytes, at + 42)? as usize;
        let name = slice(bytes, at + 46, name_len)?;
        let name = std::str::from_utf8(name).map_err(|_| "an entry name that is not UTF-8")?;
        at += 46 + skip;
        let Some(key) = name.strip_suffix(".npy") else {
            return Err(format!("entry {name}: not an .npy array"));
        };
        if method != 0 {
            return Err(format!(
                "entry {name}: compressed; wafersim reads stored arrays"
            ));
        }
        if size == u32::MAX as usize || offset == u32::MAX as usize {
            return Err(format!(
                "entry {name}: zip64; wafersim reads files below 4 GiB"
            ));
        }
        if u32le(bytes, offset)? != 0x0403_4b50 {
            return Err(format!("entry {name}: a corrupted local header"));
        }
        let local_extra = u16le(bytes, offset + 26)? as usize + u16le(bytes, offset + 28)? as usize;
        let data = slice(bytes, offset + 30 + local_extra, size)?;
        if crc32fast::hash(data) != crc {
            return Err(format!("entry {name}: its CRC does not match (corrupted)"));
        }
        let array = read_npy(data).map_err(|why| format!("array {key}: {why}"))?;
        if arrays.insert(key.to_string(), array).is_some() {
            return Err(format!("array {key} twice"));
        }
    }
    Ok(arrays)
}

/// One `.npy` file's array (the dtypes [`NpyData`] has).
fn read_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    if !bytes.starts_with(b"\x93NUMPY") {
        return Err("not an .npy array".into());
    }
    let (header_len, start) = match slice(bytes, 6, 1)?[0] {
        1 => (u16le(bytes, 8)? as usize, 10),
        2 | 3 => (u32le(bytes, 8)? as usize, 12),
        v => return Err(format!(".npy format {v}")),
    };
    let header = std::str::from_utf8(slice(bytes, start, header_len)?)
        .map_err(|_| "a header that is not text")?;
    let field = |key: &str| -> Result<&str, String> {
        let rest = header
            .split_once(&format!("'{key}': "))
            .ok_or(format!("no '{key}' in the header"))?
            .1;
        Ok(rest)
    };
    if !field("fortran_order")?.starts_with("False") {
        return Err("Fortran order; wafersim reads C order".into());
    }
    let descr = field("descr")?.trim_start_matches('\'');
    let descr = &descr[..descr.find('\'').ok_or("an unterminated descr")?];
    let shape = field("shape")?
        .strip_prefix('(')
        .ok_or("a shape that is not a tuple")?;
    let shape = &shape[..shape.find(')').ok_or("an unterminated shape")?];
    let shape: Vec<u64> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("shape entry {s:?}")))
        .collect::<Result<_, String>>()?;
    let count = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or("a shape of more than 2^64 values")? as usize;
    let body = &bytes[start + header_len..];
    let data = match descr {
        "<u8" => NpyData::U64(fixed(body, count, u64::from_le_bytes)?),
        "<f8" => NpyData::F64(fixed(body, count, f64::from_le_bytes)?),
        _ => match descr.strip_prefix("<U").map(str::parse::<usize>) {
            Some(Ok(width)) => NpyData::Text(texts(body, count, width)?),
            _ => return Err(format!("dtype {descr}; wafersim reads <u8, <f8 and <U")),
        },
    };
    Ok(NpyArray { shape, data })
}

fn fixed<T, const N: usize>(
    body: &[u8],
    count: usize,
    f: fn([u8; N]) -> T,
) -> Result<Vec<T>, String> {
    if Some(body.len()) != count.checked_mul(N) {
        return Err(format!(
            "{} bytes for {count} values of {N} bytes",
            body.len()
        ));
    }
    Ok(body
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("N bytes")))
        .collect())
}

fn texts(body: &[u8], count: usize, width: usize) -> Result<Vec<String>, String> {
    let chars: Vec<u32> = fixed(body, count.saturating_mul(width), u32::from_le_bytes)?;
    chars
        .chunks(width.max(1))
        .take(count)
        .map(|c| {
            c.iter()
                .take_while(|&&u| u != 0)
                .map(|&u| char::from_u32(u).ok_or("a string that is not unicode".to_string()))
                .collect()
        })
        .collect()
}

fn slice(bytes: &[u8], at: usize, len: usize) -> Result<&[u8], String> {
    at.checked_add(len)
        .and_then(|end| bytes.get(at..end))
        .ok_or_else(|| "truncated".to_string())
}

fn u16le(bytes: &[u8], at: usize) -> Result<u16, String> {
    Ok(u16::from_le_bytes(
        slice(bytes, at, 2)?.try_into().expect("2"),
    ))
}

fn u32le(bytes: &[u8], at: usize) -> Result<u32, String> {
    Ok(u32::from_le_bytes(
        slice(bytes, at, 4)?.try_into().expect("4"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(String, NpyArray)> {
        vec![
            (
                "a_cycles".into(),
                NpyArray::u64s(vec![2, 3], vec![1, 2, 3, 4, 5, u64::MAX]),
            ),
            ("sparsity".into(), NpyArray::f64s(vec![2], vec![0.0, 0.75])),
            ("seed".into(), NpyArray::scalar_u64(7)),
            (
                "runs".into(),
                NpyArray::texts(vec!["dense".into(), "s0.75".into()]),
            ),
        ]
    }

    #[test]
    fn arrays_round_trip_byte_for_byte_and_every_truncation_is_refused() {
        let bytes = npz_bytes(&sample()).unwrap();
        assert_eq!(npz_bytes(&sample()).unwrap(), bytes, "deterministic");
        let read = read_npz(&bytes).unwrap();
        assert_eq!(read.len(), 4);
        for (name, array) in sample() {
            assert_eq!(read[&name], array, "{name}");
        }
        for cut in 0..bytes.len() {
            assert!(read_npz(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[120] ^= 1;
        assert!(read_npz(&flipped).is_err());
        let longer = [bytes.as_slice(), b"tail"].concat();
        assert_eq!(
            read_npz(&longer).unwrap_err(),
            "bytes after the zip directory"
        );
    }

    /// The `.npy` header numpy's format spec asks for: 64-byte aligned, shapes as tuples.
    #[test]
    fn the_npy_header_is_what_numpy_writes() {
        let npy = NpyArray::u64s(vec![2, 3], vec![0; 6]).npy_bytes();
        let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&npy[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<u8', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with(" \n"));
        let scalar = NpyArray::scalar_u64(1).npy_bytes();
        assert_eq!(
            scalar.len(),
            128 + 8,
            "a 57-byte header padded to the next 64"
        );
        assert!(std::str::from_utf8(&scalar[10..128])
            .unwrap()
            .contains("'shape': (), }"));
    }
}
