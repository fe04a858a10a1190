//! A reader for the header of GGUF model files: metadata and tensor descriptions, not weights.
//! Every length read from the file is bounded, so a corrupt or hostile file gives an error,
//! never a huge allocation.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};
use std::path::Path;

const MAGIC: &[u8; 4] = b"GGUF";
const MAX_STRING: u64 = 16 << 20;
const MAX_ARRAY: u64 = 1 << 26;
const MAX_COUNT: u64 = 1 << 24;
const MAX_DIMS: u32 = 8;

/// A metadata value. Arrays keep their length and, for short arrays of scalars, nothing else:
/// a tokenizer's 49,152 strings are counted, not stored.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    String(String),
    Array { element_type: u32, len: u64 },
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(v) => Some(*v),
            Value::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One tensor's description.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Where its data starts, from the start of the data section.
    pub offset: u64,
}

impl Tensor {
    pub fn elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |n, &d| n.saturating_mul(d))
    }

    /// The bytes its data takes, when its type is known and the size fits in 64 bits.
    pub fn bytes(&self) -> Option<u64> {
        let (block, size) = block_size(self.ggml_type)?;
        let elements = self.dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d))?;
        (elements / block).checked_mul(size)
    }
}

/// Elements per block and bytes per block of a GGML type (ggml.c's type traits).
fn block_size(t: u32) -> Option<(u64, u64)> {
    Some(match t {
        0 => (1, 4),     // F32
        1 => (1, 2),     // F16
        2 => (32, 18),   // Q4_0
        3 => (32, 20),   // Q4_1
        6 => (32, 22),   // Q5_0
        7 => (32, 24),   // Q5_1
        8 => (32, 34),   // Q8_0
        9 => (32, 36),   // Q8_1
        10 => (256, 84), // Q2_K
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292), // Q8_K
        16 => (256, 66),  // IQ2_XXS
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        20 => (32, 18),
        21 => (256, 110),
        22 => (256, 82),
        23 => (256, 136), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),    // F64
        29 => (256, 56), // IQ1_M
        30 => (1, 2),    // BF16
        _ => return None,
    })
}

/// The header of a GGUF file.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<Tensor>,
    /// The length of the header and tensor descriptions, in bytes.
    pub header_bytes: u64,
}

impl Header {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// `general.architecture` (llama, qwen2, phi3, ...).
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    /// How many tensors use each ggml type, most used first.
    pub fn quantization(&self) -> Vec<(&'static str, usize)> {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for tensor in &self.tensors {
            *counts.entry(tensor.ggml_type).or_default() += 1;
        }
        let mut out: Vec<_> = counts
            .into_iter()
            .map(|(t, n)| (ggml_type_name(t), n))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        out
    }

    pub fn parameters(&self) -> u64 {
        self.tensors.iter().map(Tensor::elements).sum()
    }
}

/// The name of a ggml tensor type, as llama.cpp spells it.
pub fn ggml_type_name(t: u32) -> &'static str {
    const NAMES: &[&str] = &[
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
        "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",
        "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES.get(t as usize).copied().unwrap_or("unknown")
}

/// What went wrong reading a header.
#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    NotGguf,
    Unsupported(String),
    Corrupt(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                write!(f, "the file ends inside its GGUF header (truncated?)")
            }
            Error::Io(e) => write!(f, "{e}"),
            Error::NotGguf => write!(f, "not a GGUF file (it does not start with \"GGUF\")"),
            Error::Unsupported(why) => write!(f, "unsupported GGUF file: {why}"),
            Error::Corrupt(why) => write!(f, "corrupt GGUF header: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

struct Reader<R> {
    inner: R,
    /// Bytes read so far.
    position: u64,
}

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl<R: Read> Reader<R> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut buf = [0; N];
        self.read_exact(&mut buf)?;
        Ok(buf)
    }
    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn skip(&mut self, n: u64) -> Result<(), Error> {
        let copied = io::copy(&mut self.take(n), &mut io::sink())?;
        if copied != n {
            return Err(Error::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }
    fn string(&mut self) -> Result<String, Error> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(Error::Corrupt(format!("a string of {len} bytes")));
        }
        let mut buf = vec![0; len as usize];
        self.read_exact(&mut buf)?;
        String::from_utf8(buf).map_err(|_| Error::Corrupt("a string that is not UTF-8".to_owned()))
    }

    fn scalar_size(t: u32) -> Option<u64> {
        match t {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        }
    }

    fn value(&mut self, t: u32) -> Result<Value, Error> {
        Ok(match t {
            0 => Value::Uint(u64::from(self.array::<1>()?[0])),
            1 => Value::Int(i64::from(self.array::<1>()?[0] as i8)),
            2 => Value::Uint(u64::from(u16::from_le_bytes(self.array()?))),
            3 => Value::Int(i64::from(i16::from_le_bytes(self.array()?))),
            4 => Value::Uint(u64::from(self.u32()?)),
            5 => Value::Int(i64::from(i32::from_le_bytes(self.array()?))),
            6 => Value::Float(f64::from(f32::from_le_bytes(self.array()?))),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::String(self.string()?),
            9 => {
                let element_type = self.u32()?;
                let len = self.u64()?;
                if len > MAX_ARRAY {
                    return Err(Error::Corrupt(format!("an array of {len} elements")));
                }
                match (element_type, Self::scalar_size(element_type)) {
                    (_, Some(size)) => self.skip(size * len)?,
                    (8, None) => {
                        for _ in 0..len {
                            let n = self.u64()?;
                            if n > MAX_STRING {
                                return Err(Error::Corrupt(format!("a string of {n} bytes")));
                            }
                            self.skip(n)?;
                        }
                    }
                    _ => {
                        return Err(Error::Unsupported(format!(
                            "an array of value type {element_type}"
                        )))
                    }
                }
                Value::Array { element_type, len }
            }
            10 => Value::Uint(self.u64()?),
            11 => Value::Int(i64::from_le_bytes(self.array()?)),
            12 => Value::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(Error::Corrupt(format!("unknown value type {other}"))),
        })
    }
}

/// Reads the header of a GGUF stream.
pub fn read(input: impl Read) -> Result<Header, Error> {
    let mut r = Reader {
        inner: input,
        position: 0,
    };
    if &r.array::<4>()? != MAGIC {
        return Err(Error::NotGguf);
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(Error::Unsupported(format!(
            "version {version} (2 and 3 are supported)"
        )));
    }
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    if tensor_count > MAX_COUNT || kv_count > MAX_COUNT {
        return Err(Error::Corrupt(format!(
            "{tensor_count} tensors and {kv_count} metadata entries"
        )));
    }
    let mut metadata = BTreeMap::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let t = r.u32()?;
        metadata.insert(key, r.value(t)?);
    }
    let mut tensors = Vec::with_capacity(tensor_count as usize);
    for _ in 0..tensor_count {
        let name = r.string()?;
        let n_dims = r.u32()?;
        if n_dims > MAX_DIMS {
            return Err(Error::Corrupt(format!(
                "tensor {name} has {n_dims} dimensions"
            )));
        }
        let dims = (0..n_dims)
            .map(|_| r.u64())
            .collect::<Result<Vec<_>, _>>()?;
        let ggml_type = r.u32()?;
        let offset = r.u64()?;
        tensors.push(Tensor {
            name,
            dims,
            ggml_type,
            offset,
        });
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        header_bytes: r.position,
    })
}

impl Header {
    /// Checks that every tensor's data lies inside a file of `file_len` bytes, so that a header
    /// claiming more (576 x 2^40 elements) is an error here and not an allocation later.
    pub fn check_sizes(&self, file_len: u64) -> Result<(), Error> {
        let alignment = self
            .get("general.alignment")
            .and_then(Value::as_u64)
            .filter(|&a| a > 0 && a.is_power_of_two())
            .unwrap_or(32);
        let data_start = self.header_bytes.div_ceil(alignment) * alignment;
        for tensor in &self.tensors {
            let Some(bytes) = tensor.bytes() else {
                return Err(match block_size(tensor.ggml_type) {
                    None => Error::Unsupported(format!(
                        "tensor {} has the unknown type {}",
                        tensor.name, tensor.ggml_type
                    )),
                    Some(_) => Error::Corrupt(format!(
                        "tensor {} has dimensions {:?}, more than 2^64 bytes",
                        tensor.name, tensor.dims
                    )),
                });
            };
            let end = data_start
                .checked_add(tensor.offset)
                .and_then(|start| start.checked_add(bytes));
            if end.is_none_or(|end| end > file_len) {
                return Err(Error::Corrupt(format!(
                    "tensor {} ({:?}, {} bytes at offset {}) does not fit in the file's {file_len} bytes",
                    tensor.name, tensor.dims, bytes, tensor.offset
                )));
            }
        }
        Ok(())
    }
}

/// Reads the header of the GGUF file at `path` and checks it against the file's length.
pub fn read_file(path: &Path) -> Result<Header, Error> {
    let file = std::fs::File::open(path)?;
    let file_len = file.metadata()?.len();
    let header = read(BufReader::new(file))?;
    header.check_sizes(file_len)?;
    Ok(header)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Writes a small GGUF header: the shape of a real model's, with two tensors.
    pub fn sample() -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        }
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(2u64.to_le_bytes());
        out.extend(4u64.to_le_bytes());
        string(&mut out, "general.architecture");
        out.extend(8u32.to_le_bytes());
        string(&mut out, "llama");
        string(&mut out, "llama.context_length");
        out.extend(4u32.to_le_bytes());
        out.extend(2048u32.to_le_bytes());
        string(&mut out, "tokenizer.ggml.model");
        out.extend(8u32.to_le_bytes());
        string(&mut out, "gpt2");
        string(&mut out, "tokenizer.ggml.tokens");
        out.extend(9u32.to_le_bytes());
        out.extend(8u32.to_le_bytes());
        out.extend(3u64.to_le_bytes());
        for token in ["a", "b", "<|im_end|>"] {
            string(&mut out, token);
        }
        for (name, dims, t) in [
            ("token_embd.weight", [64u64, 3], 3u32),
            ("output_norm.weight", [64, 1], 0),
        ] {
            string(&mut out, name);
            out.extend(2u32.to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.to_le_bytes());
            out.extend(0u64.to_le_bytes());
        }
        out
    }

    #[test]
    fn reads_metadata_and_tensors() {
        let header = read(sample().as_slice()).unwrap();
        assert_eq!(header.version, 3);
        assert_eq!(header.architecture(), Some("llama"));
        assert_eq!(
            header.get("llama.context_length").and_then(Value::as_u64),
            Some(2048)
        );
        assert_eq!(
            header.get("tokenizer.ggml.tokens"),
            Some(&Value::Array {
                element_type: 8,
                len: 3
            })
        );
        assert_eq!(header.quantization(), [("F32", 1), ("Q4_1", 1)]);
        assert_eq!(header.parameters(), 64 * 3 + 64);
    }

    #[test]
    fn bad_files_give_errors_that_say_what_is_wrong() {
        assert!(matches!(read(&b"PK\x03\x04rest"[..]), Err(Error::NotGguf)));
        let mut truncated = sample();
        truncated.truncate(40);
        let error = read(truncated.as_slice()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the file ends inside its GGUF header (truncated?)"
        );
        let mut huge = sample();
        // The length of the first key becomes 2^40 bytes.
        huge[24..32].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(read(huge.as_slice())
            .unwrap_err()
            .to_string()
            .starts_with("corrupt GGUF header: a string of"));
        let mut old = sample();
        old[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert!(read(old.as_slice())
            .unwrap_err()
            .to_string()
            .contains("version 1"));
    }

    #[test]
    fn tensors_must_fit_in_the_file() {
        let header = read(sample().as_slice()).unwrap();
        // 64 x 3 Q4_1 (6 blocks of 20 bytes) and 64 F32 (256 bytes), both at offset 0.
        assert_eq!(header.tensors[0].bytes(), Some(120));
        let data_start = header.header_bytes.div_ceil(32) * 32;
        assert!(header.check_sizes(data_start + 256).is_ok());
        let error = header
            .check_sizes(data_start + 255)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("output_norm.weight") && error.contains("does not fit"),
            "{error}"
        );
        let mut absurd = header.clone();
        absurd.tensors[0].dims = vec![576, 1 << 40];
        assert!(absurd.check_sizes(1 << 30).is_err());
        absurd.tensors[0].dims = vec![1 << 32, 1 << 32];
        let error = absurd.check_sizes(u64::MAX).unwrap_err().to_string();
        assert!(error.contains("more than 2^64 bytes"), "{error}");
        absurd.tensors[0].ggml_type = 99;
        assert!(absurd
            .check_sizes(u64::MAX)
            .unwrap_err()
            .to_string()
            .contains("unknown type 99"));
    }
}
