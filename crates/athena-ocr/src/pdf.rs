//! A streaming writer of "layered" PDFs: each page is a JPEG of the scan with the OCR text laid over
//! it invisibly (text render mode 3), so that the PDF looks like the scan but can be searched and
//! copied from. Pages are written out as they are added; only the set of characters used is kept.
//!
//! The text uses one Type0 font with Identity-H encoding. Character ids are handed out in order of
//! first use and the ToUnicode CMap, written at the end, maps them back to Unicode; no font program
//! is embedded because the text is never drawn.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

use flate2::write::ZlibEncoder;
use image::{DynamicImage, GenericImageView};

use crate::page::normalize_line;
use crate::{OcrError, PageOcr};

const CATALOG: usize = 1;
const PAGES: usize = 2;
const FONT: usize = 3;
const CID_FONT: usize = 4;
const DESCRIPTOR: usize = 5;
const TO_UNICODE: usize = 6;
const FIRST_FREE: usize = 7;
/// PDF viewers' page-size limit (in points) without UserUnit.
const MAX_PAGE_PT: f32 = 14_400.0;
/// The last character id; further distinct characters all map to U+FFFD.
const MAX_CID: u16 = 0xFFFF;

struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a PDF page by page; call [`LayeredPdfWriter::finish`] to complete the file.
pub struct LayeredPdfWriter<W: Write> {
    out: Counting<W>,
    /// Byte offset of each object, by object number (index 0 unused).
    offsets: Vec<Option<u64>>,
    page_ids: Vec<usize>,
    cids: HashMap<char, u16>,
    /// `chars[cid - 1]` is the character of `cid`.
    chars: Vec<char>,
    jpeg_quality: u8,
}

impl<W: Write> std::fmt::Debug for LayeredPdfWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayeredPdfWriter").field("pages", &self.page_ids.len()).finish_non_exhaustive()
    }
}

fn io(e: std::io::Error) -> OcrError {
    OcrError::io("writing the layered PDF", e)
}

/// A number for a content stream: short, and never in exponent notation.
fn num(v: f32) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".into()
    } else {
        s.into()
    }
}

impl<W: Write> LayeredPdfWriter<W> {
    /// Starts a PDF on `out` (wrap files in a `BufWriter`). `jpeg_quality` is clamped to 1..=100.
    pub fn new(out: W, jpeg_quality: u8) -> Result<Self, OcrError> {
        let mut w = Self {
            out: Counting { inner: out, written: 0 },
            offsets: vec![None; FIRST_FREE],
            page_ids: Vec::new(),
            cids: HashMap::new(),
            chars: Vec::new(),
            jpeg_quality: jpeg_quality.clamp(1, 100),
        };
        w.out.write_all(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n").map_err(io)?;
        w.object(
            FONT,
            format!(
                "<< /Type /Font /Subtype /Type0 /BaseFont /AthenaOcrText /Encoding /Identity-H \
                 /DescendantFonts [{CID_FONT} 0 R] /ToUnicode {TO_UNICODE} 0 R >>"
            )
            .as_bytes(),
        )?;
        w.object(
            CID_FONT,
            format!(
                "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /AthenaOcrText \
                 /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> \
                 /FontDescriptor {DESCRIPTOR} 0 R /DW 1000 /CIDToGIDMap /Identity >>"
            )
            .as_bytes(),
        )?;
        w.object(
            DESCRIPTOR,
            b"<< /Type /FontDescriptor /FontName /AthenaOcrText /Flags 4 /FontBBox [0 0 1000 1000] \
              /ItalicAngle 0 /Ascent 1000 /Descent 0 /CapHeight 1000 /StemV 80 >>",
        )?;
        Ok(w)
    }

    fn begin(&mut self, id: usize) -> Result<(), OcrError> {
        if self.offsets.len() <= id {
            self.offsets.resize(id + 1, None);
        }
        self.offsets[id] = Some(self.out.written);
        writeln!(self.out, "{id} 0 obj").map_err(io)
    }

    fn object(&mut self, id: usize, body: &[u8]) -> Result<(), OcrError> {
        self.begin(id)?;
        self.out.write_all(body).map_err(io)?;
        self.out.write_all(b"\nendobj\n").map_err(io)
    }

    fn stream(&mut self, id: usize, dict: &str, data: &[u8]) -> Result<(), OcrError> {
        self.begin(id)?;
        write!(self.out, "<< {dict} /Length {} >>\nstream\n", data.len()).map_err(io)?;
        self.out.write_all(data).map_err(io)?;
        self.out.write_all(b"\nendstream\nendobj\n").map_err(io)
    }

    fn cid(&mut self, c: char) -> u16 {
        if let Some(&id) = self.cids.get(&c) {
            return id;
        }
        if self.chars.len() + 1 >= MAX_CID as usize {
            return MAX_CID;
        }
        self.chars.push(c);
        let id = self.chars.len() as u16;
        self.cids.insert(c, id);
        id
    }

    /// Appends one page: `image` scanned at `dpi`, with `ocr` (whose coordinates may be in any
    /// resolution of the same page; they are scaled to the image).
    pub fn add_page(&mut self, image: &DynamicImage, dpi: f32, ocr: &PageOcr) -> Result<(), OcrError> {
        let (iw, ih) = image.dimensions();
        if iw == 0 || ih == 0 {
            return Err(OcrError::BadImage("empty page image".into()));
        }
        if !(dpi.is_finite() && dpi > 0.0) {
            return Err(OcrError::Config(format!("bad resolution {dpi}")));
        }
        let mut k = 72.0 / dpi;
        k = k.min(MAX_PAGE_PT / iw.max(ih) as f32);
        let (pw, ph) = (iw as f32 * k, ih as f32 * k);

        let gray = matches!(image.color(), image::ColorType::L8 | image::ColorType::L16 | image::ColorType::La8 | image::ColorType::La16);
        let mut jpeg = Vec::new();
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, self.jpeg_quality);
        let encoded = if gray { enc.encode_image(&image.to_luma8()) } else { enc.encode_image(&image.to_rgb8()) };
        encoded.map_err(|e| OcrError::BadImage(format!("JPEG encoding failed: {e}")))?;

        let mut content = String::new();
        let _ = write!(content, "q {} 0 0 {} 0 0 cm /Im0 Do Q\nBT 3 Tr\n", num(pw), num(ph));
        let sx = if ocr.width > 0 { iw as f32 / ocr.width as f32 } else { 1.0 };
        let sy = if ocr.height > 0 { ih as f32 / ocr.height as f32 } else { 1.0 };
        let to_pdf = |p: [f32; 2]| [p[0] * sx * k, ph - p[1] * sy * k];
        for line in &ocr.lines {
            let text = normalize_line(&line.text);
            let n = text.chars().count();
            if n == 0 {
                continue;
            }
            let [tl, _tr, br, bl] = line.quad.map(to_pdf);
            let (dx, dy) = (br[0] - bl[0], br[1] - bl[1]);
            let len = (dx * dx + dy * dy).sqrt();
            let height = ((tl[0] - bl[0]).powi(2) + (tl[1] - bl[1]).powi(2)).sqrt();
            if len < 0.1 || height < 0.1 {
                continue;
            }
            let (cos, sin) = (dx / len, dy / len);
            // Every glyph is 1 em wide (DW 1000): stretch horizontally so the line fills its box.
            let tz = 100.0 * len / (n as f32 * height);
            let mut hex = String::with_capacity(n * 4);
            for c in text.chars() {
                let _ = write!(hex, "{:04X}", self.cid(c));
            }
            let _ = writeln!(
                content,
                "/F1 {} Tf {} Tz {} {} {} {} {} {} Tm <{hex}> Tj",
                num(height),
                num(tz),
                num(cos),
                num(sin),
                num(-sin),
                num(cos),
                num(bl[0]),
                num(bl[1])
            );
        }
        content.push_str("ET\n");
        let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(content.as_bytes()).map_err(io)?;
        let content = z.finish().map_err(io)?;

        let page_id = self.offsets.len();
        let (image_id, content_id) = (page_id + 1, page_id + 2);
        let (space, bits) = if gray { ("/DeviceGray", 8) } else { ("/DeviceRGB", 8) };
        self.stream(
            image_id,
            &format!(
                "/Type /XObject /Subtype /Image /Width {iw} /Height {ih} /ColorSpace {space} \
                 /BitsPerComponent {bits} /Filter /DCTDecode"
            ),
            &jpeg,
        )?;
        drop(jpeg);
        self.stream(content_id, "/Filter /FlateDecode", &content)?;
        self.object(
            page_id,
            format!(
                "<< /Type /Page /Parent {PAGES} 0 R /MediaBox [0 0 {} {}] \
                 /Resources << /XObject << /Im0 {image_id} 0 R >> /Font << /F1 {FONT} 0 R >> >> \
                 /Contents {content_id} 0 R >>",
                num(pw),
                num(ph)
            )
            .as_bytes(),
        )?;
        self.page_ids.push(page_id);
        Ok(())
    }

    /// Pages written so far.
    pub fn page_count(&self) -> usize {
        self.page_ids.len()
    }

    /// Writes the font's character map, the page tree, the cross-reference table and the trailer,
    /// and returns the underlying writer (flushed).
    pub fn finish(mut self) -> Result<W, OcrError> {
        let mut cmap = String::from(
            "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
             /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
             /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
             1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
        );
        let mut entries: Vec<(u16, char)> = self.chars.iter().enumerate().map(|(i, &c)| (i as u16 + 1, c)).collect();
        if self.chars.len() + 1 >= MAX_CID as usize {
            entries.push((MAX_CID, '\u{FFFD}'));
        }
        // bfchar blocks hold at most 100 entries.
        for block in entries.chunks(100) {
            let _ = writeln!(cmap, "{} beginbfchar", block.len());
            for (cid, c) in block {
                let mut units = [0u16; 2];
                let utf16: String = c.encode_utf16(&mut units).iter().map(|u| format!("{u:04X}")).collect();
                let _ = writeln!(cmap, "<{cid:04X}> <{utf16}>");
            }
            cmap.push_str("endbfchar\n");
        }
        cmap.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
        self.stream(TO_UNICODE, "", cmap.as_bytes())?;

        let kids: String = self.page_ids.iter().map(|id| format!("{id} 0 R ")).collect();
        self.object(PAGES, format!("<< /Type /Pages /Kids [{kids}] /Count {} >>", self.page_ids.len()).as_bytes())?;
        self.object(CATALOG, format!("<< /Type /Catalog /Pages {PAGES} 0 R >>").as_bytes())?;

        let xref_at = self.out.written;
        let mut xref = format!("xref\n0 {}\n0000000000 65535 f \n", self.offsets.len());
        for off in &self.offsets[1..] {
            match off {
                Some(o) => {
                    let _ = writeln!(xref, "{o:010} 00000 n ");
                }
                None => xref.push_str("0000000000 65535 f \n"),
            }
        }
        let _ = write!(xref, "trailer\n<< /Size {} /Root {CATALOG} 0 R >>\nstartxref\n{xref_at}\n%%EOF\n", self.offsets.len());
        self.out.write_all(xref.as_bytes()).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok(self.out.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OcrLine;

    #[test]
    fn writes_a_parseable_pdf_with_text() {
        let img = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(300, 200, image::Luma([255])));
        let ocr = PageOcr::new(
            300,
            200,
            vec![OcrLine { text: "关关 ok".into(), score: 0.9, quad: [[10.0, 10.0], [200.0, 10.0], [200.0, 40.0], [10.0, 40.0]] }],
        );
        let mut w = LayeredPdfWriter::new(Vec::new(), 80).expect("writer");
        w.add_page(&img, 150.0, &ocr).expect("page");
        w.add_page(&img, 150.0, &ocr).expect("page");
        let bytes = w.finish().expect("finish");
        let doc = lopdf::Document::load_mem(&bytes).expect("lopdf parses the output");
        assert_eq!(doc.get_pages().len(), 2);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("<0001> <5173>"), "ToUnicode maps CID 1 to 关");
        assert!(text.contains("/MediaBox [0 0 144 96]"));
    }

    #[test]
    fn numbers_are_plain() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(-0.0001), "0");
        assert_eq!(num(12.3456), "12.346");
        assert_eq!(num(f32::NAN), "0");
    }
}
