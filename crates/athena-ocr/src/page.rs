//! OCR results: lines with boxes, reading order, and plain text.

/// One recognised line of text.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrLine {
    pub text: String,
    /// Confidence in `0..=1`.
    pub score: f32,
    /// Corners in image pixels, clockwise from top-left: top-left, top-right, bottom-right, bottom-left.
    pub quad: [[f32; 2]; 4],
}

impl OcrLine {
    fn top(&self) -> f32 {
        self.quad.iter().map(|p| p[1]).fold(f32::INFINITY, f32::min)
    }
    fn bottom(&self) -> f32 {
        self.quad.iter().map(|p| p[1]).fold(f32::NEG_INFINITY, f32::max)
    }
    fn left(&self) -> f32 {
        self.quad.iter().map(|p| p[0]).fold(f32::INFINITY, f32::min)
    }
}

/// The OCR of one page image, lines in reading order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PageOcr {
    /// Size of the image that was recognised, in pixels; line quads are in this space.
    pub width: u32,
    pub height: u32,
    pub lines: Vec<OcrLine>,
}

impl PageOcr {
    /// Builds a page and puts its lines in reading order.
    pub fn new(width: u32, height: u32, mut lines: Vec<OcrLine>) -> Self {
        sort_reading_order(&mut lines);
        Self { width, height, lines }
    }

    /// The page's text: lines joined by newlines in reading order, with no spaces between adjacent CJK characters.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            let t = normalize_line(&line.text);
            if t.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&t);
        }
        out
    }
}

/// Top-to-bottom rows, left-to-right within a row. A line joins the current row when its vertical
/// centre lies inside the row's vertical span, which tolerates slightly skewed scans.
fn sort_reading_order(lines: &mut Vec<OcrLine>) {
    lines.sort_by(|a, b| a.top().total_cmp(&b.top()));
    let mut rows: Vec<(f32, f32, Vec<OcrLine>)> = Vec::new();
    for line in lines.drain(..) {
        let centre = (line.top() + line.bottom()) / 2.0;
        match rows.last_mut() {
            Some((top, bottom, row)) if centre >= *top && centre <= *bottom => {
                *bottom = bottom.max(line.bottom());
                row.push(line);
            }
            _ => rows.push((line.top(), line.bottom(), vec![line])),
        }
    }
    for (_, _, mut row) in rows {
        row.sort_by(|a, b| a.left().total_cmp(&b.left()));
        lines.extend(row);
    }
}

/// True for ideographs, kana, hangul and full-width punctuation: scripts written without spaces.
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF | 0x3000..=0x30FF | 0x3100..=0x31FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFFEF | 0x20000..=0x3FFFF)
}

/// Trims a line and drops whitespace that sits between two CJK characters.
pub(crate) fn normalize_line(text: &str) -> String {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let prev_cjk = out.chars().last().is_some_and(is_cjk);
            let next_cjk = chars.get(j).copied().is_some_and(is_cjk);
            if !(prev_cjk && next_cjk) {
                out.push(' ');
            }
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, x: f32, y: f32) -> OcrLine {
        OcrLine { text: text.into(), score: 1.0, quad: [[x, y], [x + 50.0, y], [x + 50.0, y + 20.0], [x, y + 20.0]] }
    }

    #[test]
    fn reading_order_rows_then_columns() {
        let page =
            PageOcr::new(200, 200, vec![line("d", 10.0, 60.0), line("b", 100.0, 8.0), line("a", 10.0, 12.0), line("c", 100.0, 30.0)]);
        let order: Vec<_> = page.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }

    #[test]
    fn text_drops_spaces_between_cjk_only() {
        assert_eq!(normalize_line(" 关 关雎鸠 ， 在河 "), "关关雎鸠，在河");
        assert_eq!(normalize_line("It is  a truth"), "It is a truth");
        assert_eq!(normalize_line("第 3 章"), "第 3 章");
    }
}
