//! DB text detection around the network: input sizing, and turning the probability map into boxes
//! (threshold, 2×2 dilation, connected components, minimum-area rectangles, scoring, unclipping).

/// Detection thresholds, as in the reference PP-OCR configuration.
pub(crate) const THRESH: f32 = 0.3;
pub(crate) const BOX_THRESH: f32 = 0.5;
pub(crate) const UNCLIP_RATIO: f32 = 1.6;
const MIN_SIZE: f32 = 3.0;
const MAX_CANDIDATES: usize = 1000;
/// Images whose shorter side is below this are enlarged for detection (reference: 736, `limit_type: min`).
const LIMIT_MIN_SIDE: f32 = 736.0;
/// Caps the detector input so that a thin strip enlarged for its short side cannot explode in size.
const MAX_DET_SIDE: f32 = 4096.0;

/// Network input size for an image of `w × h`: multiples of 32.
pub(crate) fn det_input_size(w: u32, h: u32) -> (u32, u32) {
    let (wf, hf) = (w as f32, h as f32);
    let mut ratio = if wf.min(hf) < LIMIT_MIN_SIDE { LIMIT_MIN_SIDE / wf.min(hf) } else { 1.0 };
    if wf.max(hf) * ratio > MAX_DET_SIDE {
        ratio = MAX_DET_SIDE / wf.max(hf);
    }
    let round32 = |v: f32| (((v * ratio).floor() / 32.0).round() as u32 * 32).max(32);
    (round32(wf), round32(hf))
}

/// A rectangle given by two orthonormal axes and the extents of the shape along them.
#[derive(Debug, Clone, Copy)]
struct Rect {
    u: [f32; 2],
    n: [f32; 2],
    u_min: f32,
    u_max: f32,
    n_min: f32,
    n_max: f32,
}

impl Rect {
    fn short_side(&self) -> f32 {
        (self.u_max - self.u_min).min(self.n_max - self.n_min)
    }

    fn corners(&self) -> [[f32; 2]; 4] {
        let at = |a: f32, b: f32| [a * self.u[0] + b * self.n[0], a * self.u[1] + b * self.n[1]];
        [at(self.u_min, self.n_min), at(self.u_max, self.n_min), at(self.u_max, self.n_max), at(self.u_min, self.n_max)]
    }

    /// Grows the rectangle by `d` on every side: the minimum-area rectangle of the rounded polygon
    /// offset that the DB paper's "unclip" produces.
    fn grown(&self, d: f32) -> Rect {
        Rect { u_min: self.u_min - d, u_max: self.u_max + d, n_min: self.n_min - d, n_max: self.n_max + d, ..*self }
    }
}

fn cross(o: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// Andrew's monotone chain; returns the hull counter-clockwise without repeating the first point.
fn convex_hull(mut pts: Vec<[f32; 2]>) -> Vec<[f32; 2]> {
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let mut hull: Vec<[f32; 2]> = Vec::with_capacity(pts.len() * 2);
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[f32; 2]>> = if pass == 0 { Box::new(pts.iter()) } else { Box::new(pts.iter().rev()) };
        for &p in iter {
            while hull.len() >= start + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// Minimum-area enclosing rectangle by trying each hull edge as an axis (hulls here are small).
fn min_area_rect(points: Vec<[f32; 2]>) -> Option<Rect> {
    let hull = convex_hull(points);
    if hull.len() < 3 {
        return None;
    }
    let mut best: Option<(f32, Rect)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
        if len == 0.0 {
            continue;
        }
        let u = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
        let n = [-u[1], u[0]];
        let (mut u_min, mut u_max, mut n_min, mut n_max) = (f32::INFINITY, f32::NEG_INFINITY, f32::INFINITY, f32::NEG_INFINITY);
        for p in &hull {
            let pu = p[0] * u[0] + p[1] * u[1];
            let pn = p[0] * n[0] + p[1] * n[1];
            u_min = u_min.min(pu);
            u_max = u_max.max(pu);
            n_min = n_min.min(pn);
            n_max = n_max.max(pn);
        }
        let area = (u_max - u_min) * (n_max - n_min);
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            best = Some((area, Rect { u, n, u_min, u_max, n_min, n_max }));
        }
    }
    best.map(|(_, r)| r)
}

/// Orders four corners as top-left, top-right, bottom-right, bottom-left (by x, then y within each side).
pub(crate) fn order_quad(mut pts: [[f32; 2]; 4]) -> [[f32; 2]; 4] {
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (tl, bl) = if pts[1][1] > pts[0][1] { (pts[0], pts[1]) } else { (pts[1], pts[0]) };
    let (tr, br) = if pts[3][1] > pts[2][1] { (pts[2], pts[3]) } else { (pts[3], pts[2]) };
    [tl, tr, br, bl]
}

/// Mean probability over the pixels inside `rect` (the reference's "fast" box score).
fn box_score(pred: &[f32], w: usize, h: usize, rect: &Rect) -> f32 {
    let c = rect.corners();
    let clampx = |v: f32| (v.max(0.0) as usize).min(w - 1);
    let clampy = |v: f32| (v.max(0.0) as usize).min(h - 1);
    let x0 = clampx(c.iter().map(|p| p[0]).fold(f32::INFINITY, f32::min).floor());
    let x1 = clampx(c.iter().map(|p| p[0]).fold(f32::NEG_INFINITY, f32::max).ceil());
    let y0 = clampy(c.iter().map(|p| p[1]).fold(f32::INFINITY, f32::min).floor());
    let y1 = clampy(c.iter().map(|p| p[1]).fold(f32::NEG_INFINITY, f32::max).ceil());
    let (mut sum, mut count) = (0f64, 0usize);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (px, py) = (x as f32, y as f32);
            let pu = px * rect.u[0] + py * rect.u[1];
            let pn = px * rect.n[0] + py * rect.n[1];
            // Half a pixel of tolerance: the reference rasterises the polygon including its border.
            if pu >= rect.u_min - 0.5 && pu <= rect.u_max + 0.5 && pn >= rect.n_min - 0.5 && pn <= rect.n_max + 0.5 {
                sum += pred[y * w + x] as f64;
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    }
}

/// Union-find root with path halving.
fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        parent[i as usize] = parent[parent[i as usize] as usize];
        i = parent[i as usize];
    }
    i
}

/// 8-connected components of `mask`, each as the end points of its horizontal runs (enough for a hull).
fn components(mask: &[bool], w: usize, h: usize) -> Vec<Vec<[f32; 2]>> {
    // Runs as (y, x0, x1) with x1 inclusive.
    let mut runs: Vec<(u32, u32, u32)> = Vec::new();
    let mut row_start: Vec<usize> = Vec::with_capacity(h + 1);
    for y in 0..h {
        row_start.push(runs.len());
        let row = &mask[y * w..(y + 1) * w];
        let mut x = 0;
        while x < w {
            if row[x] {
                let s = x;
                while x < w && row[x] {
                    x += 1;
                }
                runs.push((y as u32, s as u32, (x - 1) as u32));
            } else {
                x += 1;
            }
        }
    }
    row_start.push(runs.len());
    let mut parent: Vec<u32> = (0..runs.len() as u32).collect();
    for y in 1..h {
        let (prev, cur) = (row_start[y - 1]..row_start[y], row_start[y]..row_start[y + 1]);
        let mut p = prev.start;
        for c in cur {
            let (_, cx0, cx1) = runs[c];
            // Skip previous-row runs entirely left of this one (8-connectivity reaches one pixel diagonally).
            while p < prev.end && runs[p].2 + 1 < cx0 {
                p += 1;
            }
            let mut q = p;
            while q < prev.end && runs[q].1 <= cx1 + 1 {
                let (a, b) = (find(&mut parent, c as u32), find(&mut parent, q as u32));
                if a != b {
                    parent[a.max(b) as usize] = a.min(b);
                }
                q += 1;
            }
        }
    }
    let mut index_of_root: Vec<u32> = vec![u32::MAX; runs.len()];
    let mut out: Vec<Vec<[f32; 2]>> = Vec::new();
    for (i, &(y, x0, x1)) in runs.iter().enumerate() {
        let root = find(&mut parent, i as u32) as usize;
        if index_of_root[root] == u32::MAX {
            index_of_root[root] = out.len() as u32;
            out.push(Vec::new());
        }
        let pts = &mut out[index_of_root[root] as usize];
        pts.push([x0 as f32, y as f32]);
        if x1 != x0 {
            pts.push([x1 as f32, y as f32]);
        }
    }
    out
}

/// Boxes (in the coordinates of the `dest_w × dest_h` image) from the detector's `w × h` probability map.
pub(crate) fn boxes_from_map(pred: &[f32], w: usize, h: usize, dest_w: u32, dest_h: u32) -> Vec<[[f32; 2]; 4]> {
    if w == 0 || h == 0 || pred.len() < w * h {
        return Vec::new();
    }
    // Threshold, then dilate with a 2×2 kernel anchored at its centre (covers (x-1..=x, y-1..=y)).
    let bin: Vec<bool> = pred[..w * h].iter().map(|&p| p > THRESH).collect();
    let mut mask = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            mask[i] = bin[i] || (x > 0 && bin[i - 1]) || (y > 0 && (bin[i - w] || (x > 0 && bin[i - w - 1])));
        }
    }
    let (sx, sy) = (dest_w as f32 / w as f32, dest_h as f32 / h as f32);
    let mut boxes = Vec::new();
    for pts in components(&mask, w, h).into_iter().take(MAX_CANDIDATES) {
        let Some(rect) = min_area_rect(pts) else { continue };
        if rect.short_side() < MIN_SIZE {
            continue;
        }
        if box_score(pred, w, h, &rect) < BOX_THRESH {
            continue;
        }
        let (rw, rh) = (rect.u_max - rect.u_min, rect.n_max - rect.n_min);
        let distance = rw * rh * UNCLIP_RATIO / (2.0 * (rw + rh));
        let grown = rect.grown(distance);
        if grown.short_side() < MIN_SIZE + 2.0 {
            continue;
        }
        let quad = order_quad(grown.corners())
            .map(|p| [(p[0] * sx).round().clamp(0.0, dest_w as f32), (p[1] * sy).round().clamp(0.0, dest_h as f32)]);
        // Final clip into the image and drop slivers, as the reference does.
        let quad =
            order_quad(quad).map(|p| [p[0].clamp(0.0, dest_w.saturating_sub(1) as f32), p[1].clamp(0.0, dest_h.saturating_sub(1) as f32)]);
        let width = ((quad[0][0] - quad[1][0]).powi(2) + (quad[0][1] - quad[1][1]).powi(2)).sqrt();
        let height = ((quad[0][0] - quad[3][0]).powi(2) + (quad[0][1] - quad[3][1]).powi(2)).sqrt();
        if width.floor() <= 3.0 || height.floor() <= 3.0 {
            continue;
        }
        boxes.push(quad);
    }
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_size_is_multiple_of_32() {
        assert_eq!(det_input_size(1414, 2000), (1408, 2016));
        let (w, h) = det_input_size(100, 50);
        assert_eq!((w % 32, h % 32), (0, 0));
        assert!(h >= 736);
        let (w, _) = det_input_size(100_000, 10);
        assert!(w as f32 <= MAX_DET_SIDE + 32.0);
    }

    #[test]
    fn min_area_rect_of_rotated_square() {
        let pts = vec![[5.0, 0.0], [10.0, 5.0], [5.0, 10.0], [0.0, 5.0], [5.0, 5.0]];
        let r = min_area_rect(pts).expect("rect");
        let side = 50f32.sqrt();
        assert!((r.u_max - r.u_min - side).abs() < 1e-3);
        assert!((r.n_max - r.n_min - side).abs() < 1e-3);
    }

    #[test]
    fn one_blob_gives_one_box() {
        let (w, h) = (64, 32);
        let mut pred = vec![0f32; w * h];
        for y in 10..20 {
            for x in 8..50 {
                pred[y * w + x] = 0.9;
            }
        }
        // A second, separate blob too faint to pass the box threshold.
        for y in 25..30 {
            for x in 8..20 {
                pred[y * w + x] = 0.35;
            }
        }
        let boxes = boxes_from_map(&pred, w, h, 128, 64);
        assert_eq!(boxes.len(), 1);
        let b = boxes[0];
        assert!(b[0][0] < 16.0 && b[1][0] > 100.0, "{b:?}");
        assert!(b[0][1] < 20.0 && b[3][1] > 38.0, "{b:?}");
    }
}
