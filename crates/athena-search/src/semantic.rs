//! The engine-neutral parts of semantic search: cutting a book's text into overlapping chunks for
//! an embedding model, a compact encoding of vectors, and reciprocal rank fusion of ranked lists.
//!
//! Running the model is someone else's job ([`TextEmbedder`]); where vectors are stored is the
//! store's. Vectors are L2-normalised, so a dot product is the cosine similarity.

use std::collections::HashMap;
use std::io::BufRead;

use serde::Deserialize;

use crate::{Result, SearchError};

/// Chunk length in characters, as the previous system cut text for its embedding model.
pub const CHUNK_CHARS: usize = 1024;
/// Characters shared by consecutive chunks, so a sentence cut at a boundary is whole in one of them.
pub const CHUNK_OVERLAP: usize = 128;
/// Characters of a chunk kept as its excerpt in results.
pub const PREVIEW_CHARS: usize = 240;
/// The usual constant of reciprocal rank fusion: damps the weight of the very first ranks.
pub const RRF_K: f32 = 60.0;

/// A model that turns text into L2-normalised vectors (E5-style: queries and passages are
/// embedded differently). Calls are blocking and may take long: run them off async threads.
pub trait TextEmbedder: Send + Sync {
    /// Names the model and its weights; vectors of different ids are never compared.
    fn model_id(&self) -> Result<String>;
    fn embed_query(&self, text: &str) -> Result<Vec<f32>>;
    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// A piece of a book's text, cut at a sentence end where one is near.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextChunk {
    pub chunk_no: i64,
    /// The section (chapter or page) the chunk starts in.
    pub section: u32,
    pub location: Option<String>,
    pub title: Option<String>,
    pub text: String,
}

impl TextChunk {
    pub fn preview(&self) -> String {
        let text: String = self.text.split_whitespace().collect::<Vec<_>>().join(" ");
        match text.char_indices().nth(PREVIEW_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    }
}

#[derive(Deserialize)]
struct Line {
    index: u32,
    location: Option<String>,
    title: Option<String>,
    text: String,
}

/// Cuts the sections of a stored text (`text/{sha}.jsonl`) into chunks of about `CHUNK_CHARS`
/// characters overlapping by `CHUNK_OVERLAP`, never across sections (a hit names one location).
/// Streams: `each` receives batches of at most `batch` chunks, so a huge book is never whole in
/// memory; an error from `each` stops the walk. Returns the number of chunks.
pub fn chunk_book_text(lines: impl BufRead, batch: usize, mut each: impl FnMut(Vec<TextChunk>) -> Result<()>) -> Result<u64> {
    let batch = batch.max(1);
    let mut pending = Vec::with_capacity(batch);
    let mut next_no = 0i64;
    for (n, line) in lines.lines().enumerate() {
        let line_no = n as u64 + 1;
        let line = line.map_err(|e| SearchError::BadText { line: line_no, reason: e.to_string() })?;
        if line.trim().is_empty() {
            continue;
        }
        let section: Line = serde_json::from_str(&line).map_err(|e| SearchError::BadText { line: line_no, reason: e.to_string() })?;
        for piece in split_chunks(&section.text, CHUNK_CHARS, CHUNK_OVERLAP) {
            pending.push(TextChunk {
                chunk_no: next_no,
                section: section.index,
                location: section.location.clone(),
                title: section.title.clone(),
                text: piece.to_string(),
            });
            next_no += 1;
            if pending.len() >= batch {
                each(std::mem::replace(&mut pending, Vec::with_capacity(batch)))?;
            }
        }
    }
    if !pending.is_empty() {
        each(pending)?;
    }
    Ok(next_no as u64)
}

/// Splits `text` into windows of at most `size` characters, each starting `overlap` characters
/// before the previous one ended. A window ends after the last sentence end in its final quarter
/// when there is one, so chunks tend to hold whole sentences. Blank-only windows are dropped.
pub fn split_chunks(text: &str, size: usize, overlap: usize) -> Vec<&str> {
    let size = size.max(2);
    let overlap = overlap.min(size / 2);
    // Byte offset of every char boundary, plus the end.
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len())).collect();
    let chars = bounds.len() - 1;
    let mut out = Vec::new();
    let mut start = 0usize;
    while start < chars {
        let mut end = (start + size).min(chars);
        if end < chars {
            let floor = start + size * 3 / 4;
            if let Some(cut) = (floor..end).rev().find(|&i| is_sentence_end(&text[bounds[i]..bounds[i + 1]])) {
                end = cut + 1;
            }
        }
        let piece = &text[bounds[start]..bounds[end]];
        if !piece.trim().is_empty() {
            out.push(piece);
        }
        if end >= chars {
            break;
        }
        start = end.saturating_sub(overlap).max(start + 1);
    }
    out
}

fn is_sentence_end(c: &str) -> bool {
    matches!(c, "。" | "！" | "？" | "；" | "." | "!" | "?" | ";" | "\n" | "」" | "”")
}

/// Whether a text is mostly Chinese or Japanese characters: the script group of `interleave_by_script`.
pub fn is_cjk_text(text: &str) -> bool {
    let (mut cjk, mut letters) = (0usize, 0usize);
    for c in text.chars().take(2000) {
        if crate::analysis::is_cjk(c) {
            cjk += 1;
        } else if c.is_alphabetic() {
            letters += 1;
        }
    }
    // A CJK character carries about as much as a short word: weigh letters accordingly.
    cjk * 4 > letters
}

/// Orders hits for a question by script: each script's hits by score, then merged two of the
/// question's own script for one of the other. A small multilingual model scores any text in the
/// question's language above every text in another, so one ranking by raw score would bury a Chinese
/// question's answer in an English book below every Chinese passage; within its own script the answer
/// still ranks high, and the merge gives it a place. A library in one script keeps plain score order.
/// `hits` are `(score, is_cjk, item)`.
pub fn interleave_by_script<T>(question_is_cjk: bool, hits: Vec<(f32, bool, T)>) -> Vec<(f32, T)> {
    let (mut own, mut other): (Vec<_>, Vec<_>) = hits.into_iter().partition(|h| h.1 == question_is_cjk);
    own.sort_by(|a, b| b.0.total_cmp(&a.0));
    other.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = Vec::with_capacity(own.len() + other.len());
    let (mut own, mut other) = (own.into_iter().peekable(), other.into_iter().peekable());
    let mut turn = 0usize;
    while own.peek().is_some() || other.peek().is_some() {
        let take_own = turn % 3 != 2;
        let next = if take_own { own.next().or_else(|| other.next()) } else { other.next().or_else(|| own.next()) };
        if let Some((score, _, item)) = next {
            out.push((score, item));
        }
        turn += 1;
    }
    out
}

/// Encodes a vector in `4 + n` bytes: the scale as little-endian f32, then each component as a
/// signed byte of `component / scale`. Cosine rankings survive this 4× shrink (errors ~0.4%).
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 && max.is_finite() { max / 127.0 } else { 1.0 };
    let mut out = Vec::with_capacity(4 + v.len());
    out.extend_from_slice(&scale.to_le_bytes());
    out.extend(v.iter().map(|x| ((x / scale).round().clamp(-127.0, 127.0) as i8) as u8));
    out
}

/// The dot product of an encoded vector with `query`; `None` when the dimensions differ (a vector
/// of another model or a damaged row).
pub fn dot_encoded(encoded: &[u8], query: &[f32]) -> Option<f32> {
    if encoded.len() != 4 + query.len() {
        return None;
    }
    let scale = f32::from_le_bytes(encoded[..4].try_into().ok()?);
    let sum: f32 = encoded[4..].iter().zip(query).map(|(&b, &q)| (b as i8) as f32 * q).sum();
    Some(sum * scale)
}

/// Fuses ranked lists of keys by reciprocal rank fusion: each key scores Σ 1/(RRF_K + rank).
/// Returns keys best first; ties keep the order in which keys were first seen.
pub fn fuse_rrf<K: Clone + Eq + std::hash::Hash>(lists: &[Vec<K>]) -> Vec<(K, f32)> {
    let mut scores: HashMap<K, (f32, usize)> = HashMap::new();
    let mut seen = 0usize;
    for list in lists {
        for (rank, key) in list.iter().enumerate() {
            let entry = scores.entry(key.clone()).or_insert_with(|| {
                seen += 1;
                (0.0, seen)
            });
            entry.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(K, f32, usize)> = scores.into_iter().map(|(k, (s, order))| (k, s, order)).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused.into_iter().map(|(k, s, _)| (k, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_overlap_and_cover_the_text() {
        let text: String = (0..300).map(|i| format!("句子{i}。")).collect();
        let chunks = split_chunks(&text, 100, 20);
        assert!(chunks.len() > 10);
        for pair in chunks.windows(2) {
            assert!(pair[0].chars().count() <= 100);
            // The next chunk starts inside the previous one: nothing is lost between them.
            let tail: String = pair[0].chars().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
            assert!(pair[1].starts_with(&tail), "{:?} then {:?}", pair[0], pair[1]);
        }
        assert!(chunks.iter().all(|c| c.ends_with('。') || std::ptr::eq(*c, *chunks.last().unwrap())));
        assert!(text.ends_with(chunks.last().unwrap()));
    }

    #[test]
    fn short_and_empty_texts() {
        assert_eq!(split_chunks("short", 1024, 128), vec!["short"]);
        assert!(split_chunks("", 1024, 128).is_empty());
        assert!(split_chunks("   \n  ", 1024, 128).is_empty());
        // No sentence end at all: hard cuts at the size, still overlapping.
        let long = "x".repeat(250);
        let parts = split_chunks(&long, 100, 10);
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![100, 100, 70]);
    }

    #[test]
    fn book_text_is_chunked_by_section_in_batches() {
        let body = "A sentence here. ".repeat(200);
        let lines = format!(
            "{}\n\n{}\n",
            serde_json::json!({"index": 0, "location": "epubcfi(/6/2!)", "title": "One", "text": body}),
            serde_json::json!({"index": 1, "location": "epubcfi(/6/4!)", "title": "Two", "text": "Tiny."})
        );
        let mut got = Vec::new();
        let n = chunk_book_text(lines.as_bytes(), 2, |batch| {
            assert!(batch.len() <= 2);
            got.extend(batch);
            Ok(())
        })
        .unwrap();
        assert_eq!(n as usize, got.len());
        assert_eq!(got.iter().map(|c| c.chunk_no).collect::<Vec<_>>(), (0..n as i64).collect::<Vec<_>>());
        let last = got.last().unwrap();
        assert_eq!((last.section, last.title.as_deref(), last.text.as_str()), (1, Some("Two"), "Tiny."));
        assert!(got[..got.len() - 1].iter().all(|c| c.section == 0 && c.location.as_deref() == Some("epubcfi(/6/2!)")));
        assert!(chunk_book_text("{not json".as_bytes(), 8, |_| Ok(())).is_err());
    }

    #[test]
    fn encoded_vectors_keep_dot_products() {
        let a: Vec<f32> = (0..384).map(|i| ((i * 37 % 101) as f32 - 50.0) / 300.0).collect();
        let norm = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let a: Vec<f32> = a.iter().map(|x| x / norm).collect();
        let b: Vec<f32> = a.iter().rev().copied().collect();
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let approx = dot_encoded(&encode_vector(&a), &b).unwrap();
        assert!((exact - approx).abs() < 0.01, "{exact} vs {approx}");
        assert!((dot_encoded(&encode_vector(&a), &a).unwrap() - 1.0).abs() < 0.01);
        assert_eq!(dot_encoded(&encode_vector(&a), &b[..10]), None);
        assert_eq!(encode_vector(&[0.0; 4]).len(), 8);
    }

    #[test]
    fn scripts_interleave_two_to_one() {
        assert!(is_cjk_text("学而时习之，不亦说乎 and a few words"));
        assert!(!is_cjk_text("Call me Ishmael. Some years ago — 一"));
        let hits = vec![(0.9, true, "zh1"), (0.8, true, "zh2"), (0.85, true, "zh3"), (0.5, false, "en1"), (0.6, false, "en2")];
        let order: Vec<&str> = interleave_by_script(true, hits.clone()).into_iter().map(|h| h.1).collect();
        assert_eq!(order, vec!["zh1", "zh3", "en2", "zh2", "en1"]);
        let order: Vec<&str> = interleave_by_script(false, hits).into_iter().map(|h| h.1).collect();
        assert_eq!(order, vec!["en2", "en1", "zh1", "zh3", "zh2"]);
        let one_script = vec![(0.1, false, "a"), (0.3, false, "b")];
        assert_eq!(interleave_by_script(true, one_script).into_iter().map(|h| h.1).collect::<Vec<_>>(), vec!["b", "a"]);
    }

    #[test]
    fn rrf_rewards_agreement() {
        let fused = fuse_rrf(&[vec!["a", "b", "c"], vec!["c", "a", "d"]]);
        let keys: Vec<&str> = fused.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec!["a", "c", "b", "d"]);
        assert!(fused[0].1 > fused[2].1);
    }
}
