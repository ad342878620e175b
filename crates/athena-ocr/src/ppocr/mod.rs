//! PP-OCR (v4 detection and recognition, mobile v2 angle classifier) on ONNX Runtime.
//!
//! The pipeline follows the reference implementation: downscale the page to at most
//! `max_side_len`, DB detection, crop each box upright, optional 0°/180° classification, CRNN
//! recognition in aspect-sorted batches, CTC greedy decoding, then reading order.

mod det;
mod imgproc;
mod rec;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::{DynamicImage, GenericImageView, RgbImage};
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

use crate::{OcrConfig, OcrEngine, OcrError, OcrLine, PageOcr};

/// The PP-OCR engine. Models load on first use; one page is recognised at a time per engine
/// (ONNX Runtime parallelises inside each operator, `intra_threads` wide).
pub struct PpOcr {
    config: OcrConfig,
    /// Sessions need `&mut` to run, and loading is lazy: one lock covers both.
    models: Mutex<Option<Models>>,
}

struct Models {
    det: Session,
    cls: Option<Session>,
    rec: Session,
    dict: Vec<String>,
}

impl std::fmt::Debug for PpOcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PpOcr").field("model_dir", &self.config.model_dir).finish_non_exhaustive()
    }
}

fn model_path(config: &OcrConfig, name: &str) -> PathBuf {
    config.model_dir.join("ppocr").join(name)
}

/// Loads the ONNX Runtime library and creates its environment once per process. Later calls with
/// another path reuse the first: ONNX Runtime can only be loaded once into a process.
fn ensure_runtime(path: &Path) -> Result<Environment, OcrError> {
    static ENV: Mutex<Option<Environment>> = Mutex::new(None);
    let mut env = ENV.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = env.as_ref() {
        return Ok(e.clone());
    }
    if !path.is_file() {
        return Err(OcrError::RuntimeMissing(path.to_path_buf()));
    }
    let abs = std::path::absolute(path).map_err(|e| OcrError::io(format!("resolving {}", path.display()), e))?;
    let load_err = |message: String| OcrError::RuntimeLoad { path: abs.clone(), message };
    let built =
        ort::init_from(&abs).map_err(|e| load_err(e.to_string()))?.with_name("athena-ocr").build().map_err(|e| load_err(e.to_string()))?;
    *env = Some(built.clone());
    Ok(built)
}

fn load_session(env: &Environment, path: &Path, threads: usize) -> Result<Session, OcrError> {
    if !path.is_file() {
        return Err(OcrError::ModelMissing(path.to_path_buf()));
    }
    let invalid = |message: String| OcrError::ModelInvalid { path: path.to_path_buf(), message };
    Session::builder(env)
        .map_err(|e| invalid(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| invalid(e.to_string()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| invalid(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| invalid(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| invalid(e.to_string()))
}

/// The recogniser's character list: ONNX metadata `character` (PP-OCRv4 as shipped by rapidocr),
/// else a `rec_dict.txt` beside the model, one character per line.
fn load_dict(rec: &Session, dir: &Path) -> Result<Vec<String>, OcrError> {
    let from_meta = rec.metadata().ok().and_then(|m| m.custom("character"));
    let text = match from_meta {
        Some(t) => t,
        None => {
            let p = dir.join("rec_dict.txt");
            std::fs::read_to_string(&p).map_err(|_| OcrError::ModelInvalid {
                path: dir.join("rec.onnx"),
                message: format!("no `character` metadata and no dictionary at {}", p.display()),
            })?
        }
    };
    let dict: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_owned()).collect();
    if dict.is_empty() {
        return Err(OcrError::ModelInvalid { path: dir.join("rec.onnx"), message: "empty character dictionary".into() });
    }
    Ok(dict)
}

impl PpOcr {
    /// Checks that the runtime library and models exist; loading waits until first use.
    pub fn new(config: OcrConfig) -> Result<Self, OcrError> {
        let lib = config.ort_dylib_path();
        if !lib.is_file() {
            return Err(OcrError::RuntimeMissing(lib));
        }
        let mut needed = vec!["det.onnx", "rec.onnx"];
        if config.use_angle_cls {
            needed.push("cls.onnx");
        }
        for name in needed {
            let p = model_path(&config, name);
            if !p.is_file() {
                return Err(OcrError::ModelMissing(p));
            }
        }
        if config.max_side_len < 32 {
            return Err(OcrError::Config("max_side_len must be at least 32".into()));
        }
        Ok(Self { config, models: Mutex::new(None) })
    }

    /// Loads the runtime and the models now instead of on the first page.
    pub fn warm_up(&self) -> Result<(), OcrError> {
        let mut guard = self.models.lock().unwrap_or_else(|p| p.into_inner());
        self.load(&mut guard)?;
        Ok(())
    }

    fn load<'a>(&self, slot: &'a mut Option<Models>) -> Result<&'a mut Models, OcrError> {
        if slot.is_none() {
            let env = ensure_runtime(&self.config.ort_dylib_path())?;
            let t = self.config.intra_threads;
            let det = load_session(&env, &model_path(&self.config, "det.onnx"), t)?;
            let rec = load_session(&env, &model_path(&self.config, "rec.onnx"), t)?;
            let cls = if self.config.use_angle_cls { Some(load_session(&env, &model_path(&self.config, "cls.onnx"), t)?) } else { None };
            let dict = load_dict(&rec, &self.config.model_dir.join("ppocr"))?;
            tracing::debug!(characters = dict.len(), "PP-OCR models loaded");
            *slot = Some(Models { det, cls, rec, dict });
        }
        slot.as_mut().ok_or_else(|| OcrError::Inference("models not loaded".into()))
    }
}

/// Runs a one-input, one-output model and returns the output's shape and data.
fn infer(session: &mut Session, shape: [usize; 4], data: Vec<f32>) -> Result<(Vec<usize>, Vec<f32>), OcrError> {
    let input = Tensor::from_array((shape, data))?;
    let outputs = session.run(ort::inputs![input])?;
    if outputs.len() == 0 {
        return Err(OcrError::Inference("model produced no output".into()));
    }
    let (shape, values) = outputs[0].try_extract_tensor::<f32>()?;
    let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    Ok((dims, values.to_vec()))
}

impl Models {
    fn detect(&mut self, img: &RgbImage) -> Result<Vec<[[f32; 2]; 4]>, OcrError> {
        let (dw, dh) = det::det_input_size(img.width(), img.height());
        let (dw, dh) = (dw as usize, dh as usize);
        let mut data = vec![0f32; 3 * dw * dh];
        imgproc::resize_into_tensor(img, dw as u32, dh as u32, imgproc::TensorDst { data: &mut data, width: dw, height: dh });
        let (shape, map) = infer(&mut self.det, [1, 3, dh, dw], data)?;
        let (h, w) = match shape.as_slice() {
            [.., h, w] => (*h, *w),
            _ => return Err(OcrError::Inference(format!("unexpected detector output shape {shape:?}"))),
        };
        Ok(det::boxes_from_map(&map, w, h, img.width(), img.height()))
    }

    fn classify(&mut self, crops: &mut [RgbImage]) -> Result<(), OcrError> {
        let Some(cls) = self.cls.as_mut() else { return Ok(()) };
        let order = rec::by_aspect(crops);
        for chunk in order.chunks(rec::BATCH) {
            let batch: Vec<&RgbImage> = chunk.iter().map(|&i| &crops[i]).collect();
            let data = rec::make_batch(&batch, rec::CLS_WIDTH);
            let (shape, probs) = infer(cls, [chunk.len(), 3, rec::REC_HEIGHT, rec::CLS_WIDTH], data)?;
            let classes = shape.last().copied().unwrap_or(0);
            if classes < 2 {
                return Err(OcrError::Inference(format!("unexpected classifier output shape {shape:?}")));
            }
            for (k, &i) in chunk.iter().enumerate() {
                let row = &probs[k * classes..(k + 1) * classes];
                // Label 1 is "180°".
                if row[1] > row[0] && row[1] > rec::CLS_THRESH {
                    crops[i] = image::imageops::rotate180(&crops[i]);
                }
            }
        }
        Ok(())
    }

    fn recognize(&mut self, crops: &[RgbImage]) -> Result<Vec<(String, f32)>, OcrError> {
        let mut out = vec![(String::new(), 0.0); crops.len()];
        let order = rec::by_aspect(crops);
        for chunk in order.chunks(rec::BATCH) {
            let batch: Vec<&RgbImage> = chunk.iter().map(|&i| &crops[i]).collect();
            let width = rec::rec_batch_width(&batch);
            let data = rec::make_batch(&batch, width);
            let (shape, probs) = infer(&mut self.rec, [chunk.len(), 3, rec::REC_HEIGHT, width], data)?;
            let (steps, classes) = match shape.as_slice() {
                [n, t, c] if *n == chunk.len() => (*t, *c),
                _ => return Err(OcrError::Inference(format!("unexpected recogniser output shape {shape:?}"))),
            };
            for (k, &i) in chunk.iter().enumerate() {
                let Some(m) = probs.get(k * steps * classes..(k + 1) * steps * classes) else { break };
                out[i] = rec::ctc_decode(m, steps, classes, &self.dict);
            }
        }
        Ok(out)
    }
}

impl OcrEngine for PpOcr {
    fn name(&self) -> &str {
        "ppocr"
    }

    fn recognize(&self, image: &DynamicImage) -> Result<PageOcr, OcrError> {
        let (ow, oh) = image.dimensions();
        crate::check_dimensions(ow, oh, self.config.max_pixels)?;
        // Bounded work per page: the longer side is brought down to max_side_len.
        let longest = ow.max(oh);
        let scale = if longest > self.config.max_side_len { self.config.max_side_len as f32 / longest as f32 } else { 1.0 };
        let rgb: RgbImage = if scale < 1.0 {
            // As the reference does: sides rounded to multiples of 32, so detection needs no second resize.
            let side = |v: u32| ((((v as f32 * scale) as u32) as f32 / 32.0).round() as u32 * 32).max(32);
            imgproc::resize_to_rgb(image, side(ow), side(oh))
        } else {
            image.to_rgb8()
        };

        let mut guard = self.models.lock().unwrap_or_else(|p| p.into_inner());
        let models = self.load(&mut guard)?;
        let boxes = models.detect(&rgb)?;
        let (mut quads, mut crops) = (Vec::new(), Vec::new());
        for quad in boxes {
            if let Some(crop) = imgproc::crop_quad(&rgb, &quad) {
                quads.push(quad);
                crops.push(crop);
            }
        }
        models.classify(&mut crops)?;
        let texts = models.recognize(&crops)?;
        drop(guard);

        let (fx, fy) = (ow as f32 / rgb.width() as f32, oh as f32 / rgb.height() as f32);
        let lines = quads
            .into_iter()
            .zip(texts)
            .filter(|(_, (text, score))| *score >= self.config.min_text_score && !text.trim().is_empty())
            .map(|(quad, (text, score))| OcrLine { text, score, quad: quad.map(|p| [p[0] * fx, p[1] * fy]) })
            .collect();
        Ok(PageOcr::new(ow, oh, lines))
    }
}
