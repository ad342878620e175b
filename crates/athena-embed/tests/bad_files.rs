//! The loader on damaged, hostile and synthetic files: every failure is a clear error, never a
//! panic or a huge allocation; a small well-formed file loads and embeds.

mod common;

use std::path::Path;

use athena_embed::{EmbedError, Embedder, TextKind};
use common::{dot, synthetic_model, Rng};

fn load_bytes(bytes: &[u8]) -> Result<Embedder, EmbedError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.bin");
    std::fs::write(&path, bytes).unwrap();
    Embedder::load(&path)
}

fn invalid_reason(r: Result<Embedder, EmbedError>) -> String {
    match r {
        Err(EmbedError::InvalidModel { reason, .. }) => reason,
        Err(e) => panic!("expected InvalidModel, got {e}"),
        Ok(_) => panic!("a damaged file loaded"),
    }
}

#[test]
fn synthetic_model_loads_and_embeds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("e5-small-q4.bin"), synthetic_model()).unwrap();
    // A folder is accepted as well as the file.
    let m = Embedder::load(dir.path()).unwrap();
    assert_eq!(m.dim(), 64);
    assert!(m.model_id().starts_with("multilingual-e5-small-q4:"), "{}", m.model_id());
    assert_eq!(m.model_id().len(), "multilingual-e5-small-q4:".len() + 12);

    let ids = m.token_ids("hello world", TextKind::Query);
    assert!(ids.ends_with(&[5, 6]), "{ids:?}");
    // Full-width h and a tab go through the normalisation map.
    assert_eq!(m.token_ids("\u{ff48}ello\tworld", TextKind::Query), ids);

    let q = m.embed_query("hello world").unwrap();
    assert_eq!(q.len(), 64);
    assert!((dot(&q, &q) - 1.0).abs() < 1e-5);
    assert_eq!(q, m.embed_query("hello world").unwrap(), "deterministic");
    // The prefix matters: the same text as a passage is a different input.
    let p = m.embed("hello world", TextKind::Passage).unwrap();
    assert!(dot(&q, &p) < 0.99999);

    // Longer than one window (8 positions → 6 content tokens): several windows, still unit length,
    // and the batch path gives exactly the single-text results, in order.
    let long = "hello world hello hello world world hello world";
    assert!(m.token_ids(long, TextKind::Passage).len() > 12);
    let texts = [long, "", "world", long];
    let batch = m.embed_passages(&texts).unwrap();
    assert_eq!(batch.len(), 4);
    for (t, v) in texts.iter().zip(&batch) {
        assert_eq!(v, &m.embed(t, TextKind::Passage).unwrap());
        assert!((dot(v, v) - 1.0).abs() < 1e-5);
    }
    assert_eq!(batch[0], batch[3]);
    assert!(dot(&batch[0], &batch[2]) < 0.99999);

    // Only the first MAX_WINDOWS windows (6 content tokens each here) count.
    let cap = 6 * athena_embed::MAX_WINDOWS;
    let a = "hello world ".repeat(cap);
    let b = format!("{a}{}", " world hello".repeat(cap));
    let short = "hello world ".repeat(cap / 4);
    assert!(m.token_ids(&short, TextKind::Passage).len() < cap);
    assert_eq!(m.embed(&a, TextKind::Passage).unwrap(), m.embed(&b, TextKind::Passage).unwrap());
    assert_ne!(m.embed(&a, TextKind::Passage).unwrap(), m.embed(&short, TextKind::Passage).unwrap());
}

#[test]
fn truncated_files_are_rejected() {
    let full = synthetic_model();
    let mut cuts: Vec<usize> = (0..full.len()).step_by(61).collect();
    cuts.extend([1, 3, 4, 7, 8, 40, full.len() - 1]);
    for cut in cuts {
        let reason = invalid_reason(load_bytes(&full[..cut]));
        assert!(!reason.is_empty(), "cut at {cut}");
    }
}

#[test]
fn wrong_magic_and_version() {
    let mut f = synthetic_model();
    f[0] = b'X';
    assert!(invalid_reason(load_bytes(&f)).contains("magic"));
    let mut f = synthetic_model();
    f[4] = 2;
    assert!(invalid_reason(load_bytes(&f)).contains("version"));
}

#[test]
fn hostile_header_values_are_rejected() {
    let base = synthetic_model();
    // (offset, replacement i32, part of the expected message)
    let cases: &[(usize, i32, &str)] = &[
        (8, -1, "hidden size"),
        (8, 48, "block"), // not a multiple of 32
        (12, 100_000, "layer count"),
        (16, 3, "multiple"), // 64 hidden over 3 heads
        (24, i32::MAX, "vocabulary rows"),
        (28, 1, "position count"),
        (44, i32::MAX, "piece count"), // more pieces than rows
        (48, 99, "<s> id"),
    ];
    for &(off, v, want) in cases {
        let mut f = base.clone();
        f[off..off + 4].copy_from_slice(&v.to_le_bytes());
        let reason = invalid_reason(load_bytes(&f));
        assert!(reason.contains(want), "offset {off}: {reason}");
    }
    // A piece blob length far beyond the file.
    let mut f = base.clone();
    f[64..72].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(invalid_reason(load_bytes(&f)).contains("blob"));
    // NaN LayerNorm epsilon.
    let mut f = base;
    f[36..40].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(invalid_reason(load_bytes(&f)).contains("epsilon"));
}

#[test]
fn tensor_directory_out_of_range_is_rejected() {
    let f = synthetic_model();
    // The first directory entry is "emb.word": find it and point its offset past the end.
    let pos = f.windows(8).position(|w| w == b"emb.word").unwrap();
    let off_at = pos + 8 + 1 + 4;
    let mut g = f.clone();
    g[off_at..off_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(invalid_reason(load_bytes(&g)).contains("emb.word"));
    // A wrong element count for a known tensor.
    let mut g = f;
    g[pos + 9..pos + 13].copy_from_slice(&32u32.to_le_bytes());
    assert!(invalid_reason(load_bytes(&g)).contains("emb.word"));
}

#[test]
fn random_bytes_are_rejected() {
    let mut rng = Rng(42);
    for i in 0..300 {
        let len = (rng.next_u64() % 4096) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        // Half of them get a valid magic and version so the header parser sees the noise.
        if i % 2 == 0 && len >= 8 {
            bytes[..8].copy_from_slice(b"E5S1\x01\0\0\0");
        }
        invalid_reason(load_bytes(&bytes));
    }
}

#[test]
fn missing_and_oversized_files() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(Embedder::load(&dir.path().join("nope.bin")), Err(EmbedError::Io { .. })));
    // A folder without the model file.
    assert!(matches!(Embedder::load(dir.path()), Err(EmbedError::Io { .. })));
    // Refused by size before anything is read (a sparse file: no disk space used).
    let big = dir.path().join("big.bin");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(athena_embed::MAX_MODEL_BYTES + 1).unwrap();
    assert!(matches!(Embedder::load(Path::new(&big)), Err(EmbedError::TooLarge { .. })));
}

#[test]
fn real_model_truncations_are_rejected() {
    let Some(path) = common::model_file() else { return };
    let full = std::fs::read(path).unwrap();
    // Inside the header, the piece table, the normalisation map, the directory and the weights.
    for cut in [0, 3, 20, 1_000, 2_000_000, 4_600_000, 4_638_300, 30_000_000, full.len() - 1] {
        invalid_reason(load_bytes(&full[..cut]));
    }
}
