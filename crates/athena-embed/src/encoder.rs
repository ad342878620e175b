//! The XLM-RoBERTa (BERT-style, post-LayerNorm) encoder and mean pooling over one window.
//!
//! Transformer weights are dequantised to f32 once at load (about 85 MB for e5-small) so every
//! product runs through `matrixmultiply`'s packed kernels: in safe Rust that is far faster than
//! decoding 4-bit blocks inside the inner loop. The 250k-row word-embedding table stays 4-bit
//! and only the rows of the tokens being embedded are decoded.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Slice};
use rayon::prelude::*;

use crate::format::{dequantize_q4, Dims, FormatError, ModelFile, Q4_BLOCK_BYTES, QK};

/// Output columns per parallel task in a linear layer: wide enough that packing the input once
/// per task stays cheap next to the product itself.
const MIN_COLUMNS_PER_TASK: usize = 128;

struct Linear {
    /// `[out, in]`, as stored in the file.
    w: Array2<f32>,
    b: Vec<f32>,
}

struct LayerNorm {
    w: Vec<f32>,
    b: Vec<f32>,
}

struct Layer {
    /// Query, key and value projections stacked into one `[3H, H]` matrix: one product instead of three.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    out_norm: LayerNorm,
}

pub(crate) struct Encoder {
    dims: Dims,
    /// Q4_0 word embeddings, `vocab_rows × hidden`.
    word: Vec<u8>,
    /// `[max_positions, hidden]`; row `p` is the embedding of the `p`-th token of a window.
    positions: Array2<f32>,
    /// Token type 0 (the only type the model is used with).
    token_type: Vec<f32>,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl Encoder {
    pub(crate) fn load(f: &ModelFile<'_>) -> Result<Self, FormatError> {
        let d = f.dims;
        let h = d.hidden;
        let linear = |name: &str, rows: usize, cols: usize| -> Result<Linear, FormatError> {
            let mut w = vec![0f32; rows * cols];
            dequantize_q4(f.q4(&format!("{name}.w"), rows, cols)?, &mut w);
            let w = Array2::from_shape_vec((rows, cols), w).expect("rows × cols values");
            if w.iter().any(|x| !x.is_finite()) {
                return Err(FormatError(format!("tensor {name}.w holds a non-finite scale")));
            }
            Ok(Linear { w, b: f.f32s(&format!("{name}.b"), rows)? })
        };
        let norm = |name: &str| -> Result<LayerNorm, FormatError> {
            Ok(LayerNorm { w: f.f32s(&format!("{name}.w"), h)?, b: f.f32s(&format!("{name}.b"), h)? })
        };
        let mut layers = Vec::with_capacity(d.layers);
        for l in 0..d.layers {
            let (q, k, v) = (linear(&format!("l{l}.q"), h, h)?, linear(&format!("l{l}.k"), h, h)?, linear(&format!("l{l}.v"), h, h)?);
            let w = ndarray::concatenate(Axis(0), &[q.w.view(), k.w.view(), v.w.view()]).expect("same column count");
            let b = [q.b, k.b, v.b].concat();
            layers.push(Layer {
                qkv: Linear { w, b },
                attn_out: linear(&format!("l{l}.ao"), h, h)?,
                attn_norm: norm(&format!("l{l}.aln"))?,
                ffn_in: linear(&format!("l{l}.fi"), d.ffn, h)?,
                ffn_out: linear(&format!("l{l}.fo"), h, d.ffn)?,
                out_norm: norm(&format!("l{l}.oln"))?,
            });
        }
        let positions = f.f32s("emb.pos", d.max_positions * h)?;
        let mut token_type = f.f32s("emb.type", d.type_rows * h)?;
        token_type.truncate(h);
        Ok(Encoder {
            dims: d,
            word: f.q4("emb.word", d.vocab_rows, h)?.to_vec(),
            positions: Array2::from_shape_vec((d.max_positions, h), positions).expect("rows × hidden"),
            token_type,
            emb_norm: norm("emb.ln")?,
            layers,
        })
    }

    pub(crate) fn hidden(&self) -> usize {
        self.dims.hidden
    }

    /// Most tokens (including `<s>` and `</s>`) one window may hold.
    pub(crate) fn max_positions(&self) -> usize {
        self.dims.max_positions
    }

    /// Runs one window (`<s> … </s>`, at most `max_positions` ids, each below the table size)
    /// and returns the mean of its final hidden states.
    pub(crate) fn mean_pooled(&self, ids: &[u32]) -> Vec<f32> {
        let h = self.dims.hidden;
        let t = ids.len();
        debug_assert!(t >= 1 && t <= self.dims.max_positions);
        let row_bytes = h / QK * Q4_BLOCK_BYTES;

        let mut x = Array2::<f32>::zeros((t, h));
        for (p, (mut row, &id)) in x.rows_mut().into_iter().zip(ids).enumerate() {
            let row = row.as_slice_mut().expect("standard layout");
            let start = id as usize * row_bytes;
            dequantize_q4(&self.word[start..start + row_bytes], row);
            for ((r, &pos), &ty) in row.iter_mut().zip(self.positions.row(p)).zip(&self.token_type) {
                *r += pos + ty;
            }
        }
        layer_norm(&mut x, None, &self.emb_norm, self.dims.eps);

        for layer in &self.layers {
            let qkv = linear(x.view(), &layer.qkv);
            let ctx = self.attention(qkv.view());
            let attn = linear(ctx.view(), &layer.attn_out);
            layer_norm(&mut x, Some(attn.view()), &layer.attn_norm, self.dims.eps);
            let mut mid = linear(x.view(), &layer.ffn_in);
            par_gelu(&mut mid);
            let out = linear(mid.view(), &layer.ffn_out);
            layer_norm(&mut x, Some(out.view()), &layer.out_norm, self.dims.eps);
        }

        let mut pooled = vec![0f32; h];
        for row in x.rows() {
            for (p, &v) in pooled.iter_mut().zip(row) {
                *p += v;
            }
        }
        let inv = 1.0 / t as f32;
        pooled.iter_mut().for_each(|p| *p *= inv);
        pooled
    }

    /// Scaled dot-product self-attention over the whole window (no padding, so no mask), one
    /// parallel task per head. `qkv` is `[T, 3H]`; returns the `[T, H]` context.
    fn attention(&self, qkv: ArrayView2<'_, f32>) -> Array2<f32> {
        let (t, h) = (qkv.nrows(), self.dims.hidden);
        let hd = h / self.dims.heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut ctx = Array2::<f32>::zeros((t, h));
        let heads: Vec<ArrayViewMut2<'_, f32>> = ctx.axis_chunks_iter_mut(Axis(1), hd).collect();
        heads.into_par_iter().enumerate().for_each(|(i, mut out)| {
            let c = i * hd;
            // (`s![]` would expand to an `allow(unsafe_code)` the workspace forbids.)
            let cols = |from: usize| qkv.slice_axis(Axis(1), Slice::from(from..from + hd));
            let (q, k, v) = (cols(c), cols(h + c), cols(2 * h + c));
            let mut scores = q.dot(&k.t());
            for mut row in scores.rows_mut() {
                let row = row.as_slice_mut().expect("standard layout");
                let mut max = f32::NEG_INFINITY;
                for s in row.iter_mut() {
                    *s *= scale;
                    max = max.max(*s);
                }
                let mut sum = 0.0;
                for s in row.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                let inv = 1.0 / sum;
                row.iter_mut().for_each(|s| *s *= inv);
            }
            general_mat_mul(1.0, &scores, &v, 0.0, &mut out);
        });
        ctx
    }
}

/// `x · Wᵀ + b`, split over output columns so one text's layers use every core.
fn linear(x: ArrayView2<'_, f32>, lin: &Linear) -> Array2<f32> {
    let (t, out_cols) = (x.nrows(), lin.w.nrows());
    let mut y = Array2::<f32>::zeros((t, out_cols));
    for mut row in y.rows_mut() {
        row.as_slice_mut().expect("standard layout").copy_from_slice(&lin.b);
    }
    let tasks = (out_cols / MIN_COLUMNS_PER_TASK).clamp(1, rayon::current_num_threads().max(1));
    let chunk = out_cols.div_ceil(tasks);
    let parts: Vec<_> = y.axis_chunks_iter_mut(Axis(1), chunk).zip(lin.w.axis_chunks_iter(Axis(0), chunk)).collect();
    parts.into_par_iter().for_each(|(mut yc, wc)| {
        general_mat_mul(1.0, &x, &wc.t(), 1.0, &mut yc);
    });
    y
}

/// `x = LayerNorm(x + residual)` row by row (post-LN, as in BERT / XLM-R).
fn layer_norm(x: &mut Array2<f32>, residual: Option<ArrayView2<'_, f32>>, n: &LayerNorm, eps: f32) {
    let h = x.ncols() as f32;
    for (t, mut row) in x.rows_mut().into_iter().enumerate() {
        let row = row.as_slice_mut().expect("standard layout");
        if let Some(res) = &residual {
            for (r, &a) in row.iter_mut().zip(res.row(t)) {
                *r += a;
            }
        }
        let mean = row.iter().sum::<f32>() / h;
        let var = row.iter().map(|&r| (r - mean) * (r - mean)).sum::<f32>() / h;
        let inv = 1.0 / (var + eps).sqrt();
        for ((r, &w), &b) in row.iter_mut().zip(&n.w).zip(&n.b) {
            *r = (*r - mean) * inv * w + b;
        }
    }
}

/// Exact (erf) GELU, as the model was trained with.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU over a `[T, FFN]` activation, rows split across tasks (independent rows, so no
/// synchronisation beyond the join).
fn par_gelu(m: &mut Array2<f32>) {
    let chunks: Vec<_> = m.axis_chunks_iter_mut(Axis(0), 32).collect();
    chunks.into_par_iter().for_each(|mut c| c.mapv_inplace(gelu));
}
