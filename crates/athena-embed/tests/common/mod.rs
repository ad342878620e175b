//! Shared helpers: locating the real model, and writing small synthetic model files.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::sync::OnceLock;

use athena_embed::Embedder;

/// The real model file, per `ATHENA_TEST_MODEL_DIR` (set by `scripts/test.sh`). `None` (with a
/// note) when the variable is unset; a panic when it is set but the file is missing, so a broken
/// fetch cannot pass silently.
pub fn model_file() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("ATHENA_TEST_MODEL_DIR") else {
        eprintln!("ATHENA_TEST_MODEL_DIR is unset: skipping a test that needs the e5-small model");
        return None;
    };
    let path = PathBuf::from(dir).join("e5-small").join("e5-small-q4.bin");
    assert!(path.is_file(), "ATHENA_TEST_MODEL_DIR is set but {} is missing (run scripts/fetch-models.sh)", path.display());
    Some(path)
}

/// The real model, loaded once per test binary.
pub fn embedder() -> Option<&'static Embedder> {
    static MODEL: OnceLock<Embedder> = OnceLock::new();
    let path = model_file()?;
    Some(MODEL.get_or_init(|| Embedder::load(&path).expect("the fetched model loads")))
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Deterministic pseudo-random numbers (xorshift64*), so synthetic files need no extra crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// A tiny but complete E5S1 file (hidden 64, 2 layers, 2 heads, ffn 128, 10 pieces, 8
/// positions) with random weights, written field by field from the format description.
pub fn synthetic_model() -> Vec<u8> {
    let (h, layers, heads, ffn, rows, maxp, types) = (64usize, 2usize, 2usize, 128usize, 12usize, 8usize, 2usize);
    let pieces: &[(&str, f32)] = &[
        ("<s>", 0.0),
        ("<pad>", 0.0),
        ("</s>", 0.0),
        ("<unk>", 0.0),
        ("▁", -3.0),
        ("▁hello", -2.0),
        ("▁world", -2.5),
        ("o", -4.0),
        ("▁he", -3.5),
        ("llo", -3.0),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut f = Vec::new();
    let i32s = |f: &mut Vec<u8>, v: &[usize]| v.iter().for_each(|&x| f.extend((x as i32).to_le_bytes()));
    f.extend(b"E5S1");
    f.extend(1u32.to_le_bytes());
    i32s(&mut f, &[h, layers, heads, ffn, rows, maxp, types]);
    f.extend(1e-12f32.to_le_bytes());
    i32s(&mut f, &[32, pieces.len(), 0, 2, 1, 3]);
    let blob: Vec<u8> = pieces.iter().flat_map(|p| p.0.bytes()).collect();
    f.extend((blob.len() as u64).to_le_bytes());
    let mut off = 0u32;
    f.extend(off.to_le_bytes());
    for p in pieces {
        off += p.0.len() as u32;
        f.extend(off.to_le_bytes());
    }
    pieces.iter().for_each(|p| f.extend(p.1.to_le_bytes()));
    f.extend(&blob);
    // Normalisation: tab → space, U+FF48 (full-width h) → h.
    let mut norm = Vec::new();
    for (cp, out) in [(9u32, 32u32), (0xff48, 'h' as u32)] {
        norm.extend(cp.to_le_bytes());
        norm.push(1);
        norm.extend(out.to_le_bytes());
    }
    i32s(&mut f, &[2]);
    f.extend((norm.len() as u32).to_le_bytes());
    f.extend(&norm);

    // Tensors: (name, is_q4, elements); data follows the directory in this order.
    let mut tensors: Vec<(String, bool, usize)> = vec![
        ("emb.word".into(), true, rows * h),
        ("emb.pos".into(), false, maxp * h),
        ("emb.type".into(), false, types * h),
        ("emb.ln.w".into(), false, h),
        ("emb.ln.b".into(), false, h),
    ];
    for l in 0..layers {
        for (n, q4, e) in [
            ("q.w", true, h * h),
            ("q.b", false, h),
            ("k.w", true, h * h),
            ("k.b", false, h),
            ("v.w", true, h * h),
            ("v.b", false, h),
            ("ao.w", true, h * h),
            ("ao.b", false, h),
            ("aln.w", false, h),
            ("aln.b", false, h),
            ("fi.w", true, ffn * h),
            ("fi.b", false, ffn),
            ("fo.w", true, h * ffn),
            ("fo.b", false, h),
            ("oln.w", false, h),
            ("oln.b", false, h),
        ] {
            tensors.push((format!("l{l}.{n}"), q4, e));
        }
    }
    let nbytes = |q4: bool, e: usize| if q4 { e / 32 * 18 } else { e * 4 };
    let dir_len: usize = 4 + tensors.iter().map(|t| 2 + t.0.len() + 1 + 4 + 8 + 8).sum::<usize>();
    let mut data_off = f.len() + dir_len;
    i32s(&mut f, &[tensors.len()]);
    for (name, q4, e) in &tensors {
        f.extend((name.len() as u16).to_le_bytes());
        f.extend(name.as_bytes());
        f.push(u8::from(*q4));
        f.extend((*e as u32).to_le_bytes());
        f.extend((data_off as u64).to_le_bytes());
        f.extend((nbytes(*q4, *e) as u64).to_le_bytes());
        data_off += nbytes(*q4, *e);
    }
    for (name, q4, e) in &tensors {
        if *q4 {
            for _ in 0..e / 32 {
                f.extend([0x66, 0x2e]); // fp16 0.1
                (0..16).for_each(|_| f.push(rng.next_u64() as u8));
            }
        } else {
            let is_ln_weight = name.ends_with("ln.w");
            for _ in 0..*e {
                let v = if is_ln_weight { 1.0 + 0.1 * rng.unit() } else { 0.1 * rng.unit() };
                f.extend(v.to_le_bytes());
            }
        }
    }
    assert_eq!(f.len(), data_off);
    f
}
