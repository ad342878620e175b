//! Snippets: the part of a document with the most distinct query terms, HTML-escaped, matches in
//! `<mark>`. Offsets come from the analysis, which maps folded terms back to the original bytes,
//! so a simplified query marks traditional text as written.

use std::collections::{BTreeSet, HashSet};
use std::ops::Range;

use crate::analysis::analyze;

/// Candidate windows examined; a document with more matches is judged by its first ones.
const MAX_ANCHORS: usize = 400;

/// An excerpt of about `max_chars` characters of `text` around the best matches of `terms`.
pub fn highlight(text: &str, terms: &BTreeSet<String>, max_chars: usize) -> String {
    let matches: Vec<(Range<usize>, String)> =
        analyze(text).gram_terms().into_iter().filter(|t| terms.contains(&t.text)).map(|t| (t.span, t.text)).collect();
    // Byte offset of every character start, and the end.
    let bounds: Vec<usize> = text.char_indices().map(|(b, _)| b).chain([text.len()]).collect();
    let char_of = |byte: usize| bounds.partition_point(|&b| b < byte);
    let byte_of = |ch: usize| bounds[ch.min(bounds.len() - 1)];

    let (start, end) = if matches.is_empty() {
        (0, byte_of(max_chars))
    } else {
        // (index of the first match in the window, distinct terms in it); the earliest wins ties.
        let mut best = (0usize, 0usize);
        for (i, (span, _)) in matches.iter().enumerate().take(MAX_ANCHORS) {
            let limit = byte_of(char_of(span.start) + max_chars);
            let distinct: HashSet<&str> = matches[i..].iter().take_while(|(s, _)| s.end <= limit).map(|(_, t)| t.as_str()).collect();
            if distinct.len() > best.1 {
                best = (i, distinct.len());
            }
        }
        let anchor = char_of(matches[best.0].0.start);
        // Some context before the match, but not from the previous paragraph.
        let mut first = anchor.saturating_sub(max_chars / 5);
        if let Some(nl) = text[byte_of(first)..byte_of(anchor)].rfind('\n') {
            first = char_of(byte_of(first) + nl + 1);
        }
        (byte_of(first), byte_of(first + max_chars))
    };

    let mut marks: Vec<Range<usize>> = Vec::new();
    for (span, _) in &matches {
        let span = span.start.max(start)..span.end.min(end);
        if span.is_empty() {
            continue;
        }
        match marks.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => marks.push(span),
        }
    }
    let mut out = String::with_capacity(end - start + 32);
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for m in marks {
        escape_into(&mut out, &text[at..m.start]);
        out.push_str("<mark>");
        escape_into(&mut out, &text[m.clone()]);
        out.push_str("</mark>");
        at = m.end;
    }
    escape_into(&mut out, &text[at..end]);
    if end < text.len() {
        out.push('…');
    }
    out
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(terms: &[&str]) -> BTreeSet<String> {
        terms.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn marks_the_original_script_and_merges_overlapping_grams() {
        let s = highlight("隱公元年：鄭伯克段於鄢。", &set(&["郑伯", "伯克", "克段", "段于", "于鄢"]), 50);
        assert_eq!(s, "隱公元年：<mark>鄭伯克段於鄢</mark>。");
    }

    #[test]
    fn picks_the_densest_window_and_escapes() {
        let text = format!("a whale <b> here. {} The white whales & more", "filler ".repeat(40));
        let s = highlight(&text, &set(&["white", "whale"]), 30);
        assert!(s.starts_with('…'), "{s}");
        assert!(s.contains("<mark>white</mark> <mark>whales</mark> &amp; more"), "{s}");
        let none = highlight("<i>plain</i>", &set(&["zzz"]), 5);
        assert_eq!(none, "&lt;i&gt;pl…");
    }
}
