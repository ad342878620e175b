//! The user's query string → what must and what should match, in terms of the analysis streams.
//! Engine-neutral: tantivy turns it into phrase and term queries; another engine can do the same.
//!
//! Syntax is deliberately small and never fails: `"…"` is an exact phrase (an unterminated quote
//! runs to the end), everything else is words that must all appear, in any order. An unquoted
//! CJK run must contain each of its dictionary words (so word order and particles may differ),
//! and scores higher where the whole run appears as typed.

use std::collections::BTreeSet;

use crate::analysis::{analyze, UnitKind};
use crate::{Result, SearchError};

/// Longer queries are refused rather than turned into thousands of clauses.
const MAX_QUERY_CHARS: usize = 512;

/// Terms of the `grams` stream with positions relative to the phrase start. One entry is a plain
/// term.
pub type Phrase = Vec<(usize, String)>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedQuery {
    /// Each phrase must match.
    pub required: Vec<Phrase>,
    /// Optional phrases that raise the score (unquoted CJK runs as typed).
    pub boost_phrases: Vec<Phrase>,
    /// Optional terms of the `words` stream (jieba words) that raise the score.
    pub boost_words: Vec<String>,
    /// `grams` terms to mark in snippets.
    pub highlight: BTreeSet<String>,
}

impl ParsedQuery {
    /// A query with nothing searchable (only punctuation) matches nothing.
    pub fn is_empty(&self) -> bool {
        self.required.is_empty()
    }
}

/// Parses the text of a `Query`.
pub fn parse_query(text: &str) -> Result<ParsedQuery> {
    if text.trim().is_empty() {
        return Err(SearchError::InvalidQuery("the query is empty".into()));
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(SearchError::InvalidQuery(format!("the query is longer than {MAX_QUERY_CHARS} characters")));
    }
    let mut out = ParsedQuery::default();
    for (k, part) in text.split('"').enumerate() {
        // Odd parts are inside quotes.
        if k % 2 == 1 {
            quoted(part, &mut out);
        } else {
            loose(part, &mut out);
        }
    }
    let mut seen = BTreeSet::new();
    out.required.retain(|p| seen.insert(p.clone()));
    out.boost_words.sort();
    out.boost_words.dedup();
    Ok(out)
}

fn quoted(part: &str, out: &mut ParsedQuery) {
    let a = analyze(part);
    if a.units.is_empty() {
        return;
    }
    let phrase = a.phrase_terms(0..a.units.len());
    out.highlight.extend(phrase.iter().map(|(_, t)| t.clone()));
    out.required.push(phrase);
}

fn loose(part: &str, out: &mut ParsedQuery) {
    let a = analyze(part);
    for u in a.units.iter().filter(|u| u.kind == UnitKind::Word) {
        out.highlight.insert(u.text.clone());
        out.required.push(vec![(0, u.text.clone())]);
    }
    for run in a.cjk_runs() {
        let whole = a.phrase_terms(run.clone());
        out.highlight.extend(whole.iter().map(|(_, t)| t.clone()));
        if run.len() <= 2 {
            out.required.push(whole);
            continue;
        }
        for word in a.run_words(run.clone()) {
            out.required.push(a.phrase_terms(word));
        }
        out.boost_phrases.push(whole);
    }
    out.boost_words.extend(a.word_terms().into_iter().map(|t| t.text));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(terms: &[(usize, &str)]) -> Phrase {
        terms.iter().map(|(i, t)| (*i, t.to_string())).collect()
    }

    #[test]
    fn quoted_text_is_one_phrase_of_bigrams() {
        let q = parse_query("\"學而時習之\"").unwrap();
        assert_eq!(q.required, vec![p(&[(0, "学而"), (1, "而时"), (2, "时习"), (3, "习之")])]);
        assert!(q.boost_phrases.is_empty());
    }

    #[test]
    fn loose_words_are_all_required() {
        let q = parse_query("White  whales 学").unwrap();
        assert_eq!(q.required, vec![p(&[(0, "white")]), p(&[(0, "whale")]), p(&[(0, "学")])]);
        let q = parse_query("学而").unwrap();
        assert_eq!(q.required, vec![p(&[(0, "学而")])]);
    }

    #[test]
    fn long_cjk_runs_require_their_words_and_boost_the_whole() {
        let q = parse_query("我们学习中文").unwrap();
        assert!(q.required.len() >= 2, "{q:?}");
        assert!(q.required.contains(&p(&[(0, "学习")])), "{q:?}");
        assert_eq!(q.boost_phrases.len(), 1);
        assert_eq!(q.boost_phrases[0].len(), 5);
    }

    #[test]
    fn empty_and_punctuation_queries() {
        assert!(matches!(parse_query("  "), Err(SearchError::InvalidQuery(_))));
        assert!(parse_query("，。!").unwrap().is_empty());
        assert!(matches!(parse_query(&"字".repeat(600)), Err(SearchError::InvalidQuery(_))));
    }
}
