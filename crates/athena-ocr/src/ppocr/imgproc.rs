//! Pixel work for the PP-OCR pipeline: resizing straight into model tensors, and cropping a text box
//! out of the page with a perspective warp. Interpolation follows OpenCV's `INTER_LINEAR`
//! (half-pixel centres, no antialiasing) because the models were trained on OpenCV-prepared input.

use image::{DynamicImage, RgbImage};

/// Source index pairs and weight for each output coordinate of a linear resize.
fn linear_taps(src_len: u32, dst_len: u32) -> Vec<(usize, usize, f32)> {
    let scale = src_len as f32 / dst_len as f32;
    let last = src_len.saturating_sub(1) as usize;
    (0..dst_len)
        .map(|d| {
            let f = (d as f32 + 0.5) * scale - 0.5;
            if f <= 0.0 {
                (0, 0, 0.0)
            } else {
                let i = f.floor() as usize;
                if i >= last {
                    (last, last, 0.0)
                } else {
                    (i, i + 1, f - i as f32)
                }
            }
        })
        .collect()
}

/// Linear resize (OpenCV `INTER_LINEAR` semantics) of interleaved 8-bit pixels with `C` channels to RGB.
fn resize_raw<const C: usize>(raw: &[u8], w: u32, h: u32, nw: u32, nh: u32) -> RgbImage {
    let xs = linear_taps(w, nw);
    let ys = linear_taps(h, nh);
    let stride = w as usize * C;
    let mut out = vec![0u8; nw as usize * nh as usize * 3];
    for (oy, &(y0, y1, wy)) in ys.iter().enumerate() {
        let r0 = &raw[y0 * stride..(y0 + 1) * stride];
        let r1 = &raw[y1 * stride..(y1 + 1) * stride];
        let orow = &mut out[oy * nw as usize * 3..(oy + 1) * nw as usize * 3];
        for (ox, &(x0, x1, wx)) in xs.iter().enumerate() {
            for c in 0..3 {
                // Gray sources repeat their one channel.
                let k = if C == 1 { 0 } else { c };
                let top = r0[x0 * C + k] as f32 * (1.0 - wx) + r0[x1 * C + k] as f32 * wx;
                let bot = r1[x0 * C + k] as f32 * (1.0 - wx) + r1[x1 * C + k] as f32 * wx;
                orow[ox * 3 + c] = (top * (1.0 - wy) + bot * wy).round() as u8;
            }
        }
    }
    RgbImage::from_raw(nw, nh, out).unwrap_or_else(|| RgbImage::new(nw, nh))
}

/// Resizes any image to an `nw × nh` RGB image without first copying it whole when it is 8-bit RGB or gray.
pub(crate) fn resize_to_rgb(src: &DynamicImage, nw: u32, nh: u32) -> RgbImage {
    let (w, h) = (src.width(), src.height());
    if w == 0 || h == 0 || nw == 0 || nh == 0 {
        return RgbImage::new(nw, nh);
    }
    match src {
        DynamicImage::ImageRgb8(i) => resize_raw::<3>(i.as_raw(), w, h, nw, nh),
        DynamicImage::ImageLuma8(i) => resize_raw::<1>(i.as_raw(), w, h, nw, nh),
        other => {
            let rgb = other.to_rgb8();
            resize_raw::<3>(rgb.as_raw(), w, h, nw, nh)
        }
    }
}

/// Where a resized image goes inside a planar `C×H×W` tensor slice.
pub(crate) struct TensorDst<'a> {
    /// The `3 × height × width` slice for one image of the batch.
    pub data: &'a mut [f32],
    pub width: usize,
    pub height: usize,
}

/// Resizes `src` to `dst_w × dst_h` (top-left of the tensor, the rest untouched), writes channels in
/// BGR order (PaddleOCR models were trained on OpenCV's BGR) and normalises to `(v/255 - 0.5)/0.5`.
pub(crate) fn resize_into_tensor(src: &RgbImage, dst_w: u32, dst_h: u32, dst: TensorDst<'_>) {
    let dst_w = dst_w.min(dst.width as u32);
    let dst_h = dst_h.min(dst.height as u32);
    if src.width() == 0 || src.height() == 0 || dst_w == 0 || dst_h == 0 {
        return;
    }
    let xs = linear_taps(src.width(), dst_w);
    let ys = linear_taps(src.height(), dst_h);
    let plane = dst.width * dst.height;
    let raw = src.as_raw();
    let stride = src.width() as usize * 3;
    let mut row = vec![0f32; dst_w as usize * 3];
    for (oy, &(y0, y1, wy)) in ys.iter().enumerate() {
        let r0 = &raw[y0 * stride..y0 * stride + stride];
        let r1 = &raw[y1 * stride..y1 * stride + stride];
        for (ox, &(x0, x1, wx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let top = r0[x0 * 3 + c] as f32 * (1.0 - wx) + r0[x1 * 3 + c] as f32 * wx;
                let bot = r1[x0 * 3 + c] as f32 * (1.0 - wx) + r1[x1 * 3 + c] as f32 * wx;
                row[ox * 3 + c] = top * (1.0 - wy) + bot * wy;
            }
        }
        for ox in 0..dst_w as usize {
            for c in 0..3 {
                // RGB in, BGR out.
                let v = row[ox * 3 + (2 - c)];
                dst.data[c * plane + oy * dst.width + ox] = v / 127.5 - 1.0;
            }
        }
    }
}

/// Solves for the homography taking the rectangle `(0,0)-(w,h)` onto `quad` (clockwise from top-left).
/// Returns `None` when the quad is degenerate.
fn homography(w: f32, h: f32, quad: &[[f32; 2]; 4]) -> Option<[f64; 8]> {
    let dst = [[0.0, 0.0], [w as f64, 0.0], [w as f64, h as f64], [0.0, h as f64]];
    let mut m = [[0f64; 9]; 8];
    for i in 0..4 {
        let (u, v) = (dst[i][0], dst[i][1]);
        let (x, y) = (quad[i][0] as f64, quad[i][1] as f64);
        m[2 * i] = [u, v, 1.0, 0.0, 0.0, 0.0, -u * x, -v * x, x];
        m[2 * i + 1] = [0.0, 0.0, 0.0, u, v, 1.0, -u * y, -v * y, y];
    }
    // Gaussian elimination with partial pivoting on the 8×8 system.
    for col in 0..8 {
        let pivot = (col..8).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-9 {
            return None;
        }
        m.swap(col, pivot);
        for r in 0..8 {
            if r != col {
                let f = m[r][col] / m[col][col];
                if f != 0.0 {
                    let pivot_row = m[col];
                    for (x, p) in m[r][col..].iter_mut().zip(&pivot_row[col..]) {
                        *x -= f * p;
                    }
                }
            }
        }
    }
    let mut out = [0f64; 8];
    for (i, o) in out.iter_mut().enumerate() {
        *o = m[i][8] / m[i][i];
    }
    Some(out)
}

fn sample_bilinear(img: &RgbImage, x: f64, y: f64) -> [u8; 3] {
    // Border replicate: clamp into the image.
    let maxx = (img.width() - 1) as f64;
    let maxy = (img.height() - 1) as f64;
    let x = x.clamp(0.0, maxx);
    let y = y.clamp(0.0, maxy);
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(img.width() - 1), (y0 + 1).min(img.height() - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let p = |xx, yy| img.get_pixel(xx, yy).0;
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    let mut out = [0u8; 3];
    for k in 0..3 {
        let top = a[k] as f64 * (1.0 - fx) + b[k] as f64 * fx;
        let bot = c[k] as f64 * (1.0 - fx) + d[k] as f64 * fx;
        out[k] = (top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8;
    }
    out
}

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Cuts the text box `quad` out of `img` as an upright rectangle; tall results (height ≥ 1.5 × width)
/// are turned 90° counter-clockwise so that vertical lines read left to right.
pub(crate) fn crop_quad(img: &RgbImage, quad: &[[f32; 2]; 4]) -> Option<RgbImage> {
    if img.width() == 0 || img.height() == 0 {
        return None;
    }
    let w = dist(quad[0], quad[1]).max(dist(quad[2], quad[3])) as u32;
    let h = dist(quad[0], quad[3]).max(dist(quad[1], quad[2])) as u32;
    if w == 0 || h == 0 {
        return None;
    }
    let hm = homography(w as f32, h as f32, quad)?;
    let mut out = RgbImage::new(w, h);
    for v in 0..h {
        for u in 0..w {
            let (uf, vf) = (u as f64, v as f64);
            let den = hm[6] * uf + hm[7] * vf + 1.0;
            if den.abs() < 1e-12 {
                continue;
            }
            let x = (hm[0] * uf + hm[1] * vf + hm[2]) / den;
            let y = (hm[3] * uf + hm[4] * vf + hm[5]) / den;
            out.put_pixel(u, v, image::Rgb(sample_bilinear(img, x, y)));
        }
    }
    if h as f32 / w as f32 >= 1.5 {
        out = image::imageops::rotate270(&out);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_of_axis_aligned_box_copies_pixels() {
        let img = RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let quad = [[10.0, 5.0], [30.0, 5.0], [30.0, 15.0], [10.0, 15.0]];
        let crop = crop_quad(&img, &quad).expect("crop");
        assert_eq!(crop.dimensions(), (20, 10));
        assert_eq!(crop.get_pixel(0, 0).0, [10, 5, 7]);
        assert_eq!(crop.get_pixel(19, 9).0, [29, 14, 7]);
    }

    #[test]
    fn gray_and_rgb_resize_agree() {
        let gray = image::GrayImage::from_fn(30, 20, |x, y| image::Luma([(x * 8 + y) as u8]));
        let rgb = DynamicImage::ImageLuma8(gray.clone()).to_rgb8();
        let a = resize_to_rgb(&DynamicImage::ImageLuma8(gray), 13, 7);
        let b = resize_to_rgb(&DynamicImage::ImageRgb8(rgb), 13, 7);
        assert_eq!(a, b);
        assert_eq!(a.dimensions(), (13, 7));
        // Same size is a copy.
        let same = resize_to_rgb(&DynamicImage::ImageRgb8(b.clone()), 13, 7);
        assert_eq!(same, b);
    }

    #[test]
    fn tall_crop_is_rotated() {
        let img = RgbImage::new(50, 50);
        let quad = [[0.0, 0.0], [10.0, 0.0], [10.0, 40.0], [0.0, 40.0]];
        assert_eq!(crop_quad(&img, &quad).expect("crop").dimensions(), (40, 10));
    }

    #[test]
    fn resize_writes_bgr_normalised() {
        let img = RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 0]));
        let mut data = vec![9f32; 3 * 2 * 3];
        resize_into_tensor(&img, 2, 2, TensorDst { data: &mut data, width: 3, height: 2 });
        // Channel 0 is blue (0 → -1), channel 2 is red (255 → 1); column 2 is padding, untouched.
        assert_eq!(data[0], -1.0);
        assert_eq!(data[2 * 6], 1.0);
        assert_eq!(data[2], 9.0);
    }
}
