//! The Tesseract fallback: the `tesseract` binary as a subprocess, its TSV output grouped into lines.

use std::collections::BTreeMap;
use std::process::Command;

use image::{DynamicImage, GenericImageView};

use crate::page::is_cjk;
use crate::{OcrConfig, OcrEngine, OcrError, OcrLine, PageOcr};

/// Tesseract TSV for a page is small; anything larger is not what we asked for.
const MAX_TSV: u64 = 32 * 1024 * 1024;

/// OCR through the `tesseract` command (Debian's `tesseract-ocr` with e.g. `chi_sim`).
#[derive(Debug, Clone)]
pub struct TesseractOcr {
    config: OcrConfig,
}

impl TesseractOcr {
    pub fn new(config: OcrConfig) -> Result<Self, OcrError> {
        let langs_ok =
            !config.tesseract_langs.is_empty() && config.tesseract_langs.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '+');
        if !langs_ok {
            return Err(OcrError::Config(format!("bad tesseract language list {:?}", config.tesseract_langs)));
        }
        Ok(Self { config })
    }
}

impl OcrEngine for TesseractOcr {
    fn name(&self) -> &str {
        "tesseract"
    }

    fn recognize(&self, image: &DynamicImage) -> Result<PageOcr, OcrError> {
        let (w, h) = image.dimensions();
        crate::check_dimensions(w, h, self.config.max_pixels)?;
        let dir = tempfile::tempdir().map_err(|e| OcrError::io("creating a temporary folder", e))?;
        let input = dir.path().join("page.png");
        image.save_with_format(&input, image::ImageFormat::Png).map_err(|e| OcrError::BadImage(e.to_string()))?;
        let mut cmd = Command::new(&self.config.tesseract_cmd);
        cmd.arg(&input)
            .arg("stdout")
            .args(["-l", &self.config.tesseract_langs, "--psm", "3", "tsv"])
            .env("OMP_THREAD_LIMIT", self.config.intra_threads.max(1).to_string());
        let out = crate::process::run(cmd, dir.path(), self.config.timeout, MAX_TSV)?;
        let tsv = String::from_utf8_lossy(&out.stdout);
        Ok(PageOcr::new(w, h, parse_tsv(&tsv)))
    }
}

/// Groups TSV word rows (level 5) into lines by (page, block, paragraph, line).
fn parse_tsv(tsv: &str) -> Vec<OcrLine> {
    struct Acc {
        words: Vec<String>,
        confs: Vec<f32>,
        x0: f32,
        y0: f32,
        x1: f32,
        y1: f32,
    }
    let mut lines: BTreeMap<(u32, u32, u32, u32), Acc> = BTreeMap::new();
    for row in tsv.lines().skip(1) {
        let f: Vec<&str> = row.split('\t').collect();
        if f.len() < 12 || f[0] != "5" {
            continue;
        }
        let num = |i: usize| f[i].trim().parse::<f32>().ok();
        let (Some(left), Some(top), Some(width), Some(height), Some(conf)) = (num(6), num(7), num(8), num(9), num(10)) else {
            continue;
        };
        let text = f[11..].join("\t");
        let text = text.trim();
        if text.is_empty() || conf < 0.0 {
            continue;
        }
        let key = |i: usize| f[i].trim().parse::<u32>().unwrap_or(0);
        let acc = lines.entry((key(1), key(2), key(3), key(4))).or_insert(Acc {
            words: Vec::new(),
            confs: Vec::new(),
            x0: f32::INFINITY,
            y0: f32::INFINITY,
            x1: f32::NEG_INFINITY,
            y1: f32::NEG_INFINITY,
        });
        acc.words.push(text.to_owned());
        acc.confs.push(conf);
        acc.x0 = acc.x0.min(left);
        acc.y0 = acc.y0.min(top);
        acc.x1 = acc.x1.max(left + width);
        acc.y1 = acc.y1.max(top + height);
    }
    lines
        .into_values()
        .map(|a| {
            // Tesseract splits Chinese into one "word" per character: join those without spaces.
            let mut text = String::new();
            for w in &a.words {
                let both_cjk = text.chars().last().is_some_and(is_cjk) && w.chars().next().is_some_and(is_cjk);
                if !text.is_empty() && !both_cjk {
                    text.push(' ');
                }
                text.push_str(w);
            }
            let score = a.confs.iter().sum::<f32>() / a.confs.len().max(1) as f32 / 100.0;
            OcrLine { text, score: score.clamp(0.0, 1.0), quad: [[a.x0, a.y0], [a.x1, a.y0], [a.x1, a.y1], [a.x0, a.y1]] }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_rows_group_into_lines() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   4\t1\t1\t1\t1\t0\t10\t10\t100\t20\t-1\t\n\
                   5\t1\t1\t1\t1\t1\t10\t10\t20\t20\t90\t关\n\
                   5\t1\t1\t1\t1\t2\t32\t10\t20\t20\t80\t关\n\
                   5\t1\t1\t1\t1\t3\t54\t10\t40\t20\t70\tok\n\
                   5\t1\t1\t1\t2\t1\t10\t40\t50\t20\t95\tnext\n";
        let lines = parse_tsv(tsv);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, "关关 ok");
        assert!((lines[0].score - 0.8).abs() < 1e-6);
        assert_eq!(lines[0].quad[2], [94.0, 30.0]);
        assert_eq!(lines[1].text, "next");
    }
}
