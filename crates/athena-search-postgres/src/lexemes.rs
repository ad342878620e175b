//! Athena's analysis in PostgreSQL's text formats: documents → chunks of `tsvector` literals,
//! parsed queries → `tsquery` literals. Pure functions; nothing here talks to the database.
//!
//! Every lexeme is written quoted (`'…'`, with `'` and `\` escaped), so PostgreSQL takes it as
//! it is: no operator, weight, prefix or stop word in user text can change the query's shape.

use std::collections::HashMap;
use std::fmt::Write;

use athena_search::analysis::{analyze, Term};
use athena_search::{ParsedQuery, Phrase};

/// Units (CJK characters and words) a chunk starts after the previous one.
pub const CHUNK_STEP: usize = 2048;
/// Units a chunk shares with the next: at least the longest phrase a query can hold (a query
/// has at most 512 characters, so a phrase spans at most 512 units), so every phrase lies whole
/// inside one chunk.
pub const CHUNK_OVERLAP: usize = 512;
/// PostgreSQL keeps at most this many positions per lexeme of a tsvector.
const MAX_POSITIONS: usize = 256;
/// PostgreSQL refuses longer lexemes (2 KiB); analysis never makes them, this is a guard.
const MAX_LEXEME_BYTES: usize = 2000;

/// One chunk of a document: its `tsvector` literals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub grams: String,
    pub words: String,
}

/// Analyses `text` into chunks (none for text without a single term).
pub fn chunks(text: &str) -> Vec<Chunk> {
    let a = analyze(text);
    let units = a.units.len();
    if units == 0 {
        return Vec::new();
    }
    let count = units.saturating_sub(CHUNK_OVERLAP).div_ceil(CHUNK_STEP).max(1);
    let (grams, words) = (a.gram_terms(), a.word_terms());
    (0..count)
        .map(|k| {
            let range = k * CHUNK_STEP..k * CHUNK_STEP + CHUNK_STEP + CHUNK_OVERLAP;
            let pick = |terms: &[Term]| {
                tsvector(terms.iter().filter(|t| range.contains(&t.position)).map(|t| (t.text.as_str(), t.position - range.start)))
            };
            Chunk { grams: pick(&grams), words: pick(&words) }
        })
        .collect()
}

/// A `tsvector` literal of (lexeme, 0-based position) pairs.
fn tsvector<'a>(terms: impl Iterator<Item = (&'a str, usize)>) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
    for (text, position) in terms {
        if !usable(text) {
            continue;
        }
        let slot = positions.entry(text).or_insert_with(|| {
            order.push(text);
            Vec::new()
        });
        if slot.len() < MAX_POSITIONS {
            slot.push(position + 1);
        }
    }
    let mut out = String::new();
    for text in order {
        if !out.is_empty() {
            out.push(' ');
        }
        quote_into(&mut out, text);
        out.push(':');
        for (i, p) in positions[text].iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{p}");
        }
    }
    out
}

fn usable(lexeme: &str) -> bool {
    !lexeme.is_empty() && lexeme.len() <= MAX_LEXEME_BYTES && !lexeme.contains('\0')
}

fn quote_into(out: &mut String, lexeme: &str) {
    out.push('\'');
    for c in lexeme.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// A phrase as a `tsquery`: its terms joined by `<N>`, N the distance between their positions.
/// `None` when a term cannot be a lexeme (then nothing can match the phrase).
fn phrase(phrase: &Phrase) -> Option<String> {
    let mut terms = phrase.clone();
    terms.sort_by_key(|(p, _)| *p);
    let mut out = String::from("(");
    let mut last = None;
    for (position, text) in &terms {
        if !usable(text) {
            return None;
        }
        if let Some(last) = last {
            let _ = write!(out, " <{}> ", position - last);
        }
        quote_into(&mut out, text);
        last = Some(*position);
    }
    out.push(')');
    (last.is_some()).then_some(out)
}

/// A parsed query as the `tsquery` literals the engine runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsQueries {
    /// One per required phrase: a document matches when each matches one of its chunks.
    pub required: Vec<String>,
    /// Any required phrase: finds the candidate chunks through the GIN index, and ranks them.
    pub any: String,
    /// The unquoted CJK runs as typed; ranks documents that hold them whole above the rest.
    pub boost: Option<String>,
    /// jieba words, against the `words` stream.
    pub words: Option<String>,
}

/// `None` when the query can match nothing.
pub fn tsqueries(parsed: &ParsedQuery) -> Option<TsQueries> {
    let required = parsed.required.iter().map(phrase).collect::<Option<Vec<String>>>()?;
    if required.is_empty() {
        return None;
    }
    let any = required.join(" | ");
    let boost: Vec<String> = parsed.boost_phrases.iter().filter(|p| p.len() > 1).filter_map(phrase).collect();
    let words: Vec<String> = parsed
        .boost_words
        .iter()
        .filter(|w| usable(w))
        .map(|w| {
            let mut s = String::new();
            quote_into(&mut s, w);
            s
        })
        .collect();
    let join = |v: Vec<String>| (!v.is_empty()).then(|| v.join(" | "));
    Some(TsQueries { required, any, boost: join(boost), words: join(words) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use athena_search::parse_query;

    #[test]
    fn tsvectors_quote_everything_and_number_positions_from_one() {
        let c = chunks("O'Neil a\\b 學而");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].grams, "'o''neil':1 'a':2 'b':3 '学':4 '学而':4 '而':5");
        let c = chunks("我们在学习");
        assert!(c[0].words.contains("'我们':1") && c[0].words.contains("'学习':4"), "{:?}", c[0].words);
        assert!(chunks(" ，。").is_empty());
    }

    #[test]
    fn long_text_is_chunked_with_overlap_and_positions_restart() {
        let text = (0..CHUNK_STEP * 2 + 10).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        let c = chunks(&text);
        assert_eq!(c.len(), 2);
        assert!(c[0].grams.starts_with("'w0':1 "));
        // The overlap: the first chunk runs CHUNK_OVERLAP units into the second.
        assert!(c[0].grams.contains(&format!("'w{}':{}", CHUNK_STEP + 5, CHUNK_STEP + 6)));
        assert!(c[1].grams.starts_with(&format!("'w{CHUNK_STEP}':1 ")));
        assert!(c[1].grams.ends_with(&format!("'w{}':{}", CHUNK_STEP * 2 + 9, CHUNK_STEP + 10)));
        // Exactly one window's worth stays one chunk.
        let text = (0..CHUNK_STEP + CHUNK_OVERLAP).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(chunks(&text).len(), 1);
    }

    #[test]
    fn positions_per_lexeme_are_capped() {
        let c = chunks(&"the ".repeat(300));
        assert_eq!(c[0].grams.matches(',').count(), MAX_POSITIONS - 1);
    }

    #[test]
    fn queries_become_quoted_phrases() {
        let q = tsqueries(&parse_query("\"white whale\" o'neil \\ 我們學習中文").unwrap()).unwrap();
        assert_eq!(q.required[0], "('white' <1> 'whale')");
        assert!(q.required.contains(&"('o''neil')".to_string()), "{q:?}");
        assert!(q.boost.as_deref().is_some_and(|b| b.starts_with("('我们' <1> '们学' <1> '学习' <1> '习中' <1> '中文')")), "{q:?}");
        assert!(q.words.is_some());
        assert_eq!(q.any, q.required.join(" | "));
        let gap = tsqueries(&parse_query("\"學 ， 而\"").unwrap()).unwrap();
        assert_eq!(gap.required, vec!["('学' <1> '而')"]);
        assert!(tsqueries(&parse_query("( ) & | ! <-> :*").unwrap()).is_none());
    }
}
