//! Batching for the angle classifier and the CRNN recogniser, and CTC greedy decoding.

use image::RgbImage;

use super::imgproc::{resize_into_tensor, TensorDst};

pub(crate) const REC_HEIGHT: usize = 48;
/// The recogniser's base width; batches widen to their widest line.
const REC_BASE_WIDTH: usize = 320;
pub(crate) const CLS_WIDTH: usize = 192;
pub(crate) const BATCH: usize = 6;
/// The classifier must be this sure before a line is turned upside down.
pub(crate) const CLS_THRESH: f32 = 0.9;

fn ratio(img: &RgbImage) -> f32 {
    img.width() as f32 / img.height().max(1) as f32
}

/// Indices of `crops` sorted by aspect ratio, so that each batch pads little.
pub(crate) fn by_aspect(crops: &[RgbImage]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..crops.len()).collect();
    idx.sort_by(|&a, &b| ratio(&crops[a]).total_cmp(&ratio(&crops[b])));
    idx
}

/// A normalised `n × 3 × 48 × width` batch where each image keeps its aspect ratio and is zero-padded right.
pub(crate) fn make_batch(crops: &[&RgbImage], width: usize) -> Vec<f32> {
    let per = 3 * REC_HEIGHT * width;
    let mut data = vec![0f32; per * crops.len()];
    for (i, crop) in crops.iter().enumerate() {
        let w = ((REC_HEIGHT as f32 * ratio(crop)).ceil() as usize).clamp(1, width);
        resize_into_tensor(
            crop,
            w as u32,
            REC_HEIGHT as u32,
            TensorDst { data: &mut data[i * per..(i + 1) * per], width, height: REC_HEIGHT },
        );
    }
    data
}

/// Width of a recognition batch: wide enough for its widest line at height 48, never below 320.
pub(crate) fn rec_batch_width(crops: &[&RgbImage]) -> usize {
    let max_ratio = crops.iter().map(|c| ratio(c)).fold(REC_BASE_WIDTH as f32 / REC_HEIGHT as f32, f32::max);
    (REC_HEIGHT as f32 * max_ratio) as usize
}

/// Greedy CTC decoding of one `steps × classes` probability matrix. Class 0 is the blank, classes
/// `1..=dict.len()` are the dictionary, and `dict.len() + 1` is the space. Returns the text and the
/// mean probability of the emitted characters.
pub(crate) fn ctc_decode(probs: &[f32], steps: usize, classes: usize, dict: &[String]) -> (String, f32) {
    let mut text = String::new();
    let (mut sum, mut count) = (0f32, 0usize);
    let mut prev = usize::MAX;
    for t in 0..steps {
        let Some(row) = probs.get(t * classes..(t + 1) * classes) else { break };
        let (best, p) = row.iter().enumerate().fold((0usize, f32::NEG_INFINITY), |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc });
        if best != 0 && best != prev {
            if let Some(s) = dict.get(best - 1) {
                text.push_str(s);
                sum += p;
                count += 1;
            } else if best == dict.len() + 1 {
                text.push(' ');
                sum += p;
                count += 1;
            }
        }
        prev = best;
    }
    let score = if count == 0 { 0.0 } else { sum / count as f32 };
    (text, score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctc_collapses_repeats_and_blanks() {
        let dict: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        // classes: blank, a, b, space
        let steps = [
            [0.1, 0.8, 0.05, 0.05],  // a
            [0.1, 0.8, 0.05, 0.05],  // a (repeat, dropped)
            [0.9, 0.05, 0.03, 0.02], // blank
            [0.1, 0.7, 0.1, 0.1],    // a again
            [0.1, 0.1, 0.1, 0.7],    // space
            [0.0, 0.0, 1.0, 0.0],    // b
        ];
        let flat: Vec<f32> = steps.iter().flatten().copied().collect();
        let (text, score) = ctc_decode(&flat, 6, 4, &dict);
        assert_eq!(text, "aa b");
        assert!((score - (0.8 + 0.7 + 0.7 + 1.0) / 4.0).abs() < 1e-6);
    }

    #[test]
    fn batch_width_follows_widest_line() {
        let narrow = RgbImage::new(100, 48);
        let wide = RgbImage::new(960, 48);
        assert_eq!(rec_batch_width(&[&narrow]), 320);
        assert_eq!(rec_batch_width(&[&narrow, &wide]), 960);
    }
}
