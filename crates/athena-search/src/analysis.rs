//! Text analysis shared by indexing, querying and snippets, so the three can never disagree.
//!
//! Text is folded for matching — NFKC (full-width → half-width, compatibility forms), lowercase,
//! curly apostrophes → `'`, traditional → simplified Chinese (OpenCC's tables) — while every
//! folded character remembers its byte range in the original, so snippets are cut and marked in
//! the script the book was written in.
//!
//! The folded text becomes a flat list of units with positions: one per CJK character, one per
//! non-CJK word (English-stemmed). Two token streams come from them:
//! - the `grams` stream (matching): each CJK character as a unigram, and each pair of adjacent
//!   characters of one run as a bigram at the first one's position, plus the words. Any query
//!   string becomes a phrase of bigrams (or a unigram), so out-of-vocabulary strings, single
//!   characters and exact phrases all match by position, whatever a dictionary thinks;
//! - the `words` stream (ranking): jieba's search-mode words of two or more characters, so a
//!   document where the query is a real word scores above one where its characters just touch.

use std::ops::Range;
use std::sync::OnceLock;

use ferrous_opencc::config::BuiltinConfig;
use ferrous_opencc::OpenCC;
use jieba_rs::Jieba;
use rust_stemmers::{Algorithm, Stemmer};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Longer "words" are noise (base64, URLs run together) and only bloat the index.
const MAX_WORD_CHARS: usize = 64;

fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

fn t2s() -> Option<&'static OpenCC> {
    static T2S: OnceLock<Option<OpenCC>> = OnceLock::new();
    T2S.get_or_init(|| match OpenCC::from_config(BuiltinConfig::T2s) {
        Ok(cc) => Some(cc),
        Err(e) => {
            // The tables are compiled into the binary, so this is a build defect; searching
            // without folding is better than not searching.
            tracing::error!(error = %e, "OpenCC t2s tables failed to load; traditional/simplified folding is off");
            None
        }
    })
    .as_ref()
}

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// CJK scripts written without spaces: Han, kana, Hangul syllables.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3007 | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2EBEF | 0x2F800..=0x2FA1F | 0x30000..=0x3134F
        | 0x3040..=0x309F | 0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xAC00..=0xD7AF)
}

/// Text folded for matching; `spans[i]` is the byte range in the original of `chars[i]`.
#[derive(Clone, Debug, Default)]
pub struct Folded {
    pub chars: Vec<char>,
    pub spans: Vec<Range<usize>>,
}

impl Folded {
    pub fn as_string(&self) -> String {
        self.chars.iter().collect()
    }
}

/// Folds `text` (see the module documentation).
pub fn fold(text: &str) -> Folded {
    let mut out = Folded { chars: Vec::with_capacity(text.len()), spans: Vec::with_capacity(text.len()) };
    let mut cluster = String::new();
    // A base character and the combining marks after it normalise together (é as e + ◌́).
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_ascii() && chars.peek().is_none_or(|&(_, n)| n.is_ascii()) {
            out.chars.push(c.to_ascii_lowercase());
            out.spans.push(i..i + 1);
            continue;
        }
        cluster.clear();
        cluster.push(c);
        let mut end = i + c.len_utf8();
        while let Some(&(j, n)) = chars.peek() {
            if canonical_combining_class(n) == 0 {
                break;
            }
            cluster.push(n);
            end = j + n.len_utf8();
            chars.next();
        }
        for n in cluster.nfkc() {
            for l in n.to_lowercase() {
                out.chars.push(if matches!(l, '\u{2018}' | '\u{2019}' | '\u{FF07}') { '\'' } else { l });
                out.spans.push(i..end);
            }
        }
    }
    fold_script(&mut out.chars);
    out
}

/// Traditional → simplified, one character for one so the spans stay valid.
fn fold_script(chars: &mut [char]) {
    let Some(cc) = t2s() else { return };
    if !chars.iter().any(|&c| is_cjk(c)) {
        return;
    }
    let s: String = chars.iter().collect();
    let converted = cc.convert(&s);
    if converted.chars().count() == chars.len() {
        for (slot, c) in chars.iter_mut().zip(converted.chars()) {
            *slot = c;
        }
        return;
    }
    // A phrase rule changed the length (OpenCC's t2s tables keep it, but they are data):
    // fall back to characters one by one.
    let mut buf = [0u8; 4];
    for slot in chars.iter_mut().filter(|c| is_cjk(**c)) {
        let one = cc.convert(slot.encode_utf8(&mut buf));
        let mut it = one.chars();
        if let (Some(c), None) = (it.next(), it.next()) {
            *slot = c;
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnitKind {
    Cjk,
    Word,
}

/// One position of analysed text: a CJK character or a stemmed word.
#[derive(Clone, Debug)]
pub struct Unit {
    pub kind: UnitKind,
    /// Folded character, or stemmed word.
    pub text: String,
    /// Byte range in the original text.
    pub span: Range<usize>,
    /// Units of one CJK run (no punctuation, space or word between them) share it.
    pub run: usize,
}

/// Analysed text: its units in order; a unit's index is its position.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    pub units: Vec<Unit>,
}

/// One token: a term, its position and its byte range in the original text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    pub position: usize,
    pub span: Range<usize>,
}

/// Analyses `text` into units.
pub fn analyze(text: &str) -> Analysis {
    let folded = fold(text);
    let s = folded.as_string();
    // Byte offset in `s` → index in `folded.chars`.
    let mut char_at = vec![0usize; s.len() + 1];
    for (k, (b, _)) in s.char_indices().enumerate() {
        char_at[b] = k;
    }
    char_at[s.len()] = folded.chars.len();

    let mut units = Vec::new();
    let mut run = 0usize;
    let mut in_cjk_run = false;
    for (b, seg) in s.split_word_bound_indices() {
        let first = char_at[b];
        if seg.chars().all(is_cjk) {
            if !in_cjk_run {
                run += 1;
                in_cjk_run = true;
            }
            for (k, c) in seg.chars().enumerate() {
                units.push(Unit { kind: UnitKind::Cjk, text: c.to_string(), span: folded.spans[first + k].clone(), run });
            }
            continue;
        }
        in_cjk_run = false;
        if !seg.chars().any(char::is_alphanumeric) {
            continue;
        }
        let n = seg.chars().count();
        if n > MAX_WORD_CHARS {
            continue;
        }
        let span = folded.spans[first].start..folded.spans[first + n - 1].end;
        let word = seg.trim_matches('\'');
        let text = if word.chars().any(|c| c.is_ascii_digit()) { word.to_string() } else { stemmer().stem(word).into_owned() };
        run += 1;
        units.push(Unit { kind: UnitKind::Word, text, span, run });
    }
    Analysis { units }
}

impl Analysis {
    /// The matching stream: CJK unigrams and same-run bigrams, and words.
    pub fn gram_terms(&self) -> Vec<Term> {
        let mut out = Vec::with_capacity(self.units.len() * 2);
        for (i, u) in self.units.iter().enumerate() {
            out.push(Term { text: u.text.clone(), position: i, span: u.span.clone() });
            if u.kind == UnitKind::Cjk {
                if let Some(next) = self.units.get(i + 1).filter(|n| n.kind == UnitKind::Cjk && n.run == u.run) {
                    out.push(Term { text: format!("{}{}", u.text, next.text), position: i, span: u.span.start..next.span.end });
                }
            }
        }
        out
    }

    /// The ranking stream: jieba search-mode words of two or more characters from each CJK run.
    pub fn word_terms(&self) -> Vec<Term> {
        let mut out = Vec::new();
        for run in self.cjk_runs() {
            let s: String = run.clone().map(|i| self.units[i].text.as_str()).collect();
            for w in jieba().cut_for_search(&s, false) {
                if w.end - w.start < 2 {
                    continue;
                }
                let (a, z) = (run.start + w.start, run.start + w.end - 1);
                out.push(Term { text: w.word.to_string(), position: a, span: self.units[a].span.start..self.units[z].span.end });
            }
        }
        out
    }

    /// Unit ranges of the CJK runs.
    pub fn cjk_runs(&self) -> Vec<Range<usize>> {
        let mut runs: Vec<Range<usize>> = Vec::new();
        for (i, u) in self.units.iter().enumerate() {
            if u.kind != UnitKind::Cjk {
                continue;
            }
            match runs.last_mut() {
                Some(r) if r.end == i && self.units[r.start].run == u.run => r.end = i + 1,
                _ => runs.push(i..i + 1),
            }
        }
        runs
    }

    /// The terms that find `units[range]` as a contiguous phrase: bigrams (a unigram for a lone
    /// character) and words, with positions relative to the range start.
    pub fn phrase_terms(&self, range: Range<usize>) -> Vec<(usize, String)> {
        let base = range.start;
        let mut out = Vec::new();
        for i in range.clone() {
            let u = &self.units[i];
            let next = self.units.get(i + 1).filter(|n| i + 1 < range.end && n.kind == UnitKind::Cjk && n.run == u.run);
            let prev_joined = i > base && {
                let p = &self.units[i - 1];
                p.kind == UnitKind::Cjk && p.run == u.run
            };
            match (&u.kind, next) {
                (UnitKind::Cjk, Some(n)) => out.push((i - base, format!("{}{}", u.text, n.text))),
                // The end of a run is covered by the bigram before it.
                (UnitKind::Cjk, None) if prev_joined => {}
                _ => out.push((i - base, u.text.clone())),
            }
        }
        out
    }

    /// Dictionary words of a CJK run (jieba's default mode), as unit ranges: the pieces an
    /// unquoted query requires, in any order.
    pub fn run_words(&self, run: Range<usize>) -> Vec<Range<usize>> {
        let s: String = run.clone().map(|i| self.units[i].text.as_str()).collect();
        jieba().cut(&s, false).into_iter().map(|w| run.start + w.start..run.start + w.end).collect()
    }
}

/// Which stream a `AthenaTokenizer` produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Grams,
    Words,
}

/// The analysis as a tantivy tokenizer; offsets point into the original text.
#[derive(Clone, Debug)]
pub struct AthenaTokenizer {
    stream: Stream,
}

impl AthenaTokenizer {
    pub fn new(stream: Stream) -> Self {
        Self { stream }
    }
}

pub struct VecTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

impl Tokenizer for AthenaTokenizer {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        let a = analyze(text);
        let terms = match self.stream {
            Stream::Grams => a.gram_terms(),
            Stream::Words => a.word_terms(),
        };
        let tokens = terms
            .into_iter()
            .map(|t| Token { offset_from: t.span.start, offset_to: t.span.end, position: t.position, text: t.text, position_length: 1 })
            .collect();
        VecTokenStream { tokens, next: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grams(s: &str) -> Vec<String> {
        analyze(s).gram_terms().into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn folds_traditional_width_and_case_keeping_original_spans() {
        let text = "鄭伯克段於鄢 ＡＢＣ Whales";
        let f = fold(text);
        assert_eq!(f.as_string(), "郑伯克段于鄢 abc whales");
        let a = analyze(text);
        let first = &a.units[0];
        assert_eq!(&text[first.span.clone()], "鄭");
        assert_eq!(a.units[6].text, "abc");
        assert_eq!(&text[a.units[6].span.clone()], "ＡＢＣ");
        assert_eq!(a.units[7].text, "whale");
    }

    #[test]
    fn cjk_runs_give_unigrams_and_bigrams_but_not_across_punctuation() {
        assert_eq!(grams("学而，时"), vec!["学", "学而", "而", "时"]);
        let a = analyze("学而时习之");
        assert_eq!(
            a.phrase_terms(0..5),
            vec![(0, "学而".to_string()), (1, "而时".to_string()), (2, "时习".to_string()), (3, "习之".to_string())]
        );
        assert_eq!(analyze("之").phrase_terms(0..1), vec![(0, "之".to_string())]);
    }

    #[test]
    fn words_are_split_stemmed_and_mixed_with_cjk() {
        assert_eq!(grams("The whales' Rust编程 3.14"), vec!["the", "whale", "rust", "编", "编程", "程", "3.14"]);
        assert_eq!(grams("café CAFÉ"), vec!["café", "café"]);
    }

    #[test]
    fn jieba_words_rank_and_split_queries() {
        let a = analyze("我们在学习中文");
        let words: Vec<String> = a.word_terms().into_iter().map(|t| t.text).collect();
        assert!(words.contains(&"我们".to_string()) && words.contains(&"学习".to_string()), "{words:?}");
        let pieces = a.run_words(0..a.units.len());
        assert!(pieces.contains(&(3..5)), "{pieces:?}");
    }
}
