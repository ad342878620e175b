//! Shared by every target: the library reads files by path, so each input is written to one
//! scratch file per process (libFuzzer workers are separate processes) and overwritten each run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};

pub fn input_file(data: &[u8]) -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| std::env::temp_dir().join(format!("athena-fuzz-{}.bin", std::process::id())));
    // A failed write would make every later run meaningless; stop loudly instead.
    std::fs::write(path, data).expect("write fuzz input to the temp dir");
    path.clone()
}

/// athena-formats runs lopdf under `catch_unwind` by design (lopdf panics on some broken PDFs),
/// but libFuzzer's panic hook aborts before unwinding, which would report every contained panic
/// as a crash. This swaps in a hook that counts and prints instead. A panic that escapes the
/// library still aborts: libfuzzer-sys checks for unwinding out of the target closure.
#[allow(dead_code)] // only the targets that can reach lopdf call it
pub fn contain_library_panics() {
    static HOOK: Once = Once::new();
    static CONTAINED: AtomicU64 = AtomicU64::new(0);
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let n = CONTAINED.fetch_add(1, Ordering::Relaxed) + 1;
            if n <= 20 || n.is_power_of_two() {
                eprintln!("contained panic #{n}: {info}");
            }
        }));
    });
}

/// Which part of a generated EPUB the fuzz input becomes. Mutating a real EPUB mostly breaks
/// deflate streams and CRCs, so the XML readers behind them see little; wrapping the input as
/// one stored part of an otherwise valid book sends mutations straight to them.
#[allow(dead_code)] // used by the EPUB targets only
pub enum Part {
    Chapter,
    Package,
    Nav,
}

/// A valid, uncompressed EPUB whose `part` is `data`; CRCs are right, so every byte reaches
/// the parser.
#[allow(dead_code)]
pub fn wrap_epub(part: Part, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    const OPF: &[u8] = br#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>T</dc:title><dc:language>en</dc:language></metadata><manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="c1"/><itemref idref="nav" linear="no"/></spine></package>"#;
    const NAV: &[u8] = br#"<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><body><nav epub:type="toc"><ol><li><a href="c1.xhtml">One</a></li></ol></nav></body></html>"#;
    const CHAPTER: &[u8] =
        br#"<html xmlns="http://www.w3.org/1999/xhtml"><head><title>c</title></head><body><h1>One</h1><p>Text</p></body></html>"#;

    let (opf, nav, chapter) = match part {
        Part::Chapter => (OPF, NAV, data),
        Part::Package => (data, NAV, CHAPTER),
        Part::Nav => (OPF, data, CHAPTER),
    };
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let files: [(&str, &[u8]); 5] = [
        ("mimetype", b"application/epub+zip"),
        ("META-INF/container.xml", br#"<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OPS/p.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#),
        ("OPS/p.opf", opf),
        ("OPS/nav.xhtml", nav),
        ("OPS/c1.xhtml", chapter),
    ];
    for (name, content) in files {
        // Writing to memory cannot fail short of allocation failure.
        zip.start_file(name, stored).expect("zip entry");
        zip.write_all(content).expect("zip write");
    }
    zip.finish().expect("zip finish").into_inner()
}

/// First byte chooses how the rest is used: as a whole file, or as one part of a valid EPUB.
#[allow(dead_code)]
pub fn epub_input(data: &[u8]) -> PathBuf {
    match data.split_first() {
        Some((1, rest)) => input_file(&wrap_epub(Part::Chapter, rest)),
        Some((2, rest)) => input_file(&wrap_epub(Part::Package, rest)),
        Some((3, rest)) => input_file(&wrap_epub(Part::Nav, rest)),
        _ => input_file(data),
    }
}
