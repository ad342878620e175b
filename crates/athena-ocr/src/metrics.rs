//! Accuracy measures used by the tests and the benchmark.

/// Character error rate: Levenshtein distance between `ocr` and `truth`, counted on Unicode scalar
/// values with all whitespace removed, divided by the length of `truth`. `0.0` when both are empty.
pub fn cer(ocr: &str, truth: &str) -> f64 {
    let a: Vec<char> = ocr.chars().filter(|c| !c.is_whitespace()).collect();
    let b: Vec<char> = truth.chars().filter(|c| !c.is_whitespace()).collect();
    if b.is_empty() {
        return if a.is_empty() { 0.0 } else { 1.0 };
    }
    levenshtein(&a, &b) as f64 / b.len() as f64
}

/// Like [`cer`] but whitespace runs count as one space (for space-separated scripts, where a missing
/// or extra word break is an error).
pub fn cer_words(ocr: &str, truth: &str) -> f64 {
    let collapse = |s: &str| -> Vec<char> { s.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect() };
    let (a, b) = (collapse(ocr), collapse(truth));
    if b.is_empty() {
        return if a.is_empty() { 0.0 } else { 1.0 };
    }
    levenshtein(&a, &b) as f64 / b.len() as f64
}

fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cer_counts_edits_on_characters() {
        assert_eq!(cer("关关雎鸠", "关关雎鸠"), 0.0);
        assert!((cer("关关睢鸠", "关关雎鸠") - 0.25).abs() < 1e-9);
        assert!((cer("ab c", "abcd") - 0.25).abs() < 1e-9);
        assert_eq!(cer("", ""), 0.0);
        assert!((cer_words("a  b", "a b") - 0.0).abs() < 1e-9);
        assert!((cer_words("ab", "a b") - 1.0 / 3.0).abs() < 1e-9);
    }
}
