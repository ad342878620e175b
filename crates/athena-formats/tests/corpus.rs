//! Runs the formats crate against the shared real-world corpus (read-only).

use std::path::{Path, PathBuf};
use std::time::Instant;

use athena_formats::{inspect_file, quick_metadata, sniff_file, BookFormat, FormatError, Limits, QuickMetadata};

fn corpus() -> PathBuf {
    std::env::var_os("ATHENA_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")])
        .find(|d| d.join("truth.json").is_file())
        .expect("the shared corpus (set ATHENA_CORPUS, or keep shared/ next to the repository)")
}

fn files_in(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus().join(dir)).unwrap_or_else(|e| panic!("corpus folder {dir}: {e}")).map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn inspect(rel: &str) -> Result<(BookFormat, QuickMetadata), FormatError> {
    inspect_file(&corpus().join(rel), &Limits::default())
}

fn meta(rel: &str, format: BookFormat) -> QuickMetadata {
    let path = corpus().join(rel);
    assert_eq!(sniff_file(&path).unwrap(), format, "{rel}");
    quick_metadata(&path, format, &Limits::default()).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_epub_has_a_title_and_toc() {
    let mut files = files_in("epub");
    files.extend(files_in("zh"));
    assert!(files.len() >= 14);
    for path in files {
        assert_eq!(sniff_file(&path).unwrap(), BookFormat::Epub, "{path:?}");
        let m = quick_metadata(&path, BookFormat::Epub, &Limits::default()).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let title = m.title.as_deref().unwrap_or_default();
        assert!(!title.is_empty(), "{path:?} has no title");
        // Every book in the corpus ships a nav document or NCX.
        assert!(!m.toc.is_empty(), "{path:?} has no toc");
        assert!(m.toc.iter().all(|e| e.level >= 1 && !e.title.is_empty()));
        assert!(m.language.is_some(), "{path:?} has no language");
    }
}

#[test]
fn chinese_epubs_match_truth() {
    let lunyu = meta("zh/lunyu.epub", BookFormat::Epub);
    assert_eq!(lunyu.title.as_deref(), Some("论语"));
    assert_eq!(lunyu.authors, vec!["孔子弟子及再传弟子".to_owned()]);
    assert_eq!(lunyu.language.as_deref(), Some("zh-CN"));
    assert!(lunyu.toc.len() >= 20, "lunyu toc: {}", lunyu.toc.len());

    let gw = meta("zh/guwenguanzhi.epub", BookFormat::Epub);
    assert_eq!(gw.title.as_deref(), Some("古文觀止"));
    assert_eq!(gw.language.as_deref(), Some("zh-Hant"));
    assert!(gw.toc.len() >= 222, "guwenguanzhi toc: {}", gw.toc.len());

    let ts = meta("zh/tangshi300.epub", BookFormat::Epub);
    assert_eq!(ts.title.as_deref(), Some("唐詩三百首"));
    assert!(ts.toc.len() >= 300, "tangshi toc: {}", ts.toc.len());

    for m in [&lunyu, &gw, &ts] {
        let cover = m.cover.as_ref().expect("zh books have covers");
        assert!(cover.media_type.starts_with("image/"));
        assert!((100..=10_000).contains(&cover.width), "{cover:?}");
        assert!((100..=10_000).contains(&cover.height), "{cover:?}");
        assert!(!cover.bytes.is_empty());
    }
}

#[test]
fn toc_hrefs_point_into_the_archive() {
    let m = meta("zh/lunyu.epub", BookFormat::Epub);
    let first = &m.toc[0];
    let path = first.href.split('#').next().unwrap();
    let file = std::fs::File::open(corpus().join("zh/lunyu.epub")).unwrap();
    let archive = zip::ZipArchive::new(file).unwrap();
    assert!(archive.index_for_name(path).is_some(), "{first:?}");
}

#[test]
fn conversion_inputs_sniff_correctly() {
    let expect = [
        ("childrens-literature.fb2", BookFormat::Fb2),
        ("childrens-literature.mobi", BookFormat::Mobi),
        ("lunyu.azw3", BookFormat::Azw3),
        ("lunyu.docx", BookFormat::Docx),
        ("lunyu.fb2", BookFormat::Fb2),
        ("lunyu.mobi", BookFormat::Mobi),
        ("lunyu.rtf", BookFormat::Rtf),
        ("lunyu.txt", BookFormat::Txt),
    ];
    assert_eq!(files_in("convert").len(), expect.len(), "corpus changed");
    for (name, format) in expect {
        let path = corpus().join("convert").join(name);
        assert_eq!(sniff_file(&path).unwrap(), format, "{name}");
        quick_metadata(&path, format, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn cheap_metadata_for_conversion_inputs() {
    for name in ["lunyu.mobi", "lunyu.azw3", "lunyu.fb2"] {
        let (_, m) = inspect(&format!("convert/{name}")).unwrap();
        assert_eq!(m.title.as_deref(), Some("论语"), "{name}");
        assert_eq!(m.authors, vec!["孔子弟子及再传弟子".to_owned()], "{name}");
    }
    let (_, m) = inspect("convert/childrens-literature.mobi").unwrap();
    assert_eq!(m.authors.len(), 2);
    assert_eq!(m.language.as_deref(), Some("en"));
}

#[test]
fn pdf_text_layer_detection() {
    let text = meta("pdf/text-layer-zh.pdf", BookFormat::Pdf);
    assert_eq!(text.is_digitalized, Some(true));
    assert!(text.digitalization_confidence.unwrap() >= 0.5);
    assert!(text.page_count.unwrap() >= 1);

    let shijing = meta("pdf/scanned-shijing.pdf", BookFormat::Pdf);
    assert_eq!(shijing.is_digitalized, Some(false));
    assert_eq!(shijing.page_count, Some(6));
    assert_eq!(shijing.digitalization_confidence, Some(0.0));

    let en = meta("pdf/scanned-en.pdf", BookFormat::Pdf);
    assert_eq!(en.is_digitalized, Some(false));
    assert_eq!(en.page_count, Some(1));
}

fn expect_err(rel: &str, code: &str) {
    match inspect(rel) {
        Err(e) => assert_eq!(e.reason_code(), code, "{rel}: {e}"),
        Ok((f, m)) => panic!("{rel}: expected {code}, got {f:?} {m:?}"),
    }
}

#[test]
fn bad_files_each_fail_in_their_own_way() {
    expect_err("bad/empty.epub", "empty_file");
    assert!(matches!(sniff_file(&corpus().join("bad/empty.epub")), Err(FormatError::Empty)));
    expect_err("bad/random-bytes.epub", "unrecognized_format");
    expect_err("bad/truncated.epub", "corrupt_file");
    expect_err("bad/zip-bomb.epub", "archive_bomb");
    expect_err("bad/path-traversal.epub", "unsafe_archive");
    expect_err("bad/xml-bomb.epub", "xml_bomb");
    expect_err("bad/not-a-pdf.pdf", "unrecognized_format");
    expect_err("bad/broken-xref.pdf", "corrupt_file");

    // Sniffing alone still recognises the damaged EPUBs (quick_metadata reports the damage).
    for name in ["truncated", "zip-bomb", "path-traversal", "xml-bomb"] {
        let path = corpus().join(format!("bad/{name}.epub"));
        assert_eq!(sniff_file(&path).unwrap(), BookFormat::Epub, "{name}");
    }

    let (format, m) = inspect("bad/image-bomb-cover.epub").unwrap();
    assert_eq!(format, BookFormat::Epub);
    assert_eq!(m.title.as_deref(), Some("Huge cover"));
    assert!(m.cover.is_none());
    assert!(m.warnings.iter().any(|w| w.contains("30000x30000")), "{:?}", m.warnings);

    let (format, _) = inspect("bad/looks-like-epub.txt.epub").unwrap();
    assert_eq!(format, BookFormat::Txt);
}

#[test]
fn pdf_over_memory_limit_is_too_large() {
    let limits = Limits { max_pdf_bytes_in_memory: 100, ..Limits::default() };
    let err = quick_metadata(&corpus().join("pdf/scanned-en.pdf"), BookFormat::Pdf, &limits).unwrap_err();
    assert_eq!(err.reason_code(), "too_large");
}

#[test]
fn tight_limits_turn_big_entries_into_errors_not_allocations() {
    let limits = Limits { max_entry_bytes: 64, ..Limits::default() };
    let err = quick_metadata(&corpus().join("zh/lunyu.epub"), BookFormat::Epub, &limits).unwrap_err();
    assert_eq!(err.reason_code(), "too_large");
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn bad_folder_is_processed_fast_and_in_bounded_memory() {
    let before = vm_hwm_kib();
    let start = Instant::now();
    for _ in 0..3 {
        for path in files_in("bad") {
            let _ = inspect_file(&path, &Limits::default());
        }
    }
    let elapsed = start.elapsed();
    assert!(elapsed.as_secs() < 10, "took {elapsed:?}");
    if let (Some(before), Some(after)) = (before, vm_hwm_kib()) {
        // Other tests run in parallel threads of this process, so this bounds them too.
        let growth_mb = after.saturating_sub(before) / 1024;
        assert!(growth_mb < 200, "peak memory grew {growth_mb} MB");
    }
}

/// Deterministic fuzzing: mutated real files and random bytes must never panic.
#[test]
fn mutated_inputs_never_panic() {
    let dir = std::env::temp_dir().join(format!("athena-formats-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seeds: Vec<Vec<u8>> = [
        "zh/lunyu.epub",
        "bad/image-bomb-cover.epub",
        "bad/broken-xref.pdf",
        "convert/lunyu.azw3",
        "convert/lunyu.fb2",
        "pdf/text-layer-zh.pdf",
        "epub/wasteland.epub",
    ]
    .iter()
    .map(|rel| std::fs::read(corpus().join(rel)).unwrap())
    .collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let target = dir.join("case.bin");
    // ATHENA_FUZZ_ROUNDS raises the count for a longer local soak.
    let rounds: usize = std::env::var("ATHENA_FUZZ_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    for round in 0..rounds {
        let mut data = if round % 6 == 5 {
            (0..(next() % 4096)).map(|_| next() as u8).collect()
        } else {
            let mut d = seeds[round % seeds.len()].clone();
            for _ in 0..(1 + next() % 16) {
                let at = (next() as usize) % d.len();
                d[at] = next() as u8;
            }
            d
        };
        if round % 4 == 3 {
            let keep = (next() as usize) % data.len().max(1);
            data.truncate(keep);
        }
        std::fs::write(&target, &data).unwrap();
        let _ = inspect_file(&target, &Limits::default());
        for format in BookFormat::ALL {
            let _ = quick_metadata(&target, format, &Limits::default());
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn reason_codes_are_stable() {
    let all = [
        (FormatError::Empty, "empty_file"),
        (FormatError::Unrecognized, "unrecognized_format"),
        (FormatError::Corrupt("x".into()), "corrupt_file"),
        (FormatError::ArchiveBomb("x".into()), "archive_bomb"),
        (FormatError::XmlBomb, "xml_bomb"),
        (FormatError::UnsafeArchive("x".into()), "unsafe_archive"),
        (FormatError::TooLarge("x".into()), "too_large"),
        (FormatError::Io(std::io::Error::other("x")), "io_error"),
    ];
    for (err, code) in all {
        assert_eq!(err.reason_code(), code);
    }
    let _: &Path = Path::new("");
}

#[test]
fn cover_limits_drop_the_cover_not_the_book() {
    let path = corpus().join("zh/lunyu.epub");
    let small_bytes = Limits { max_cover_bytes: 100, ..Limits::default() };
    let m = quick_metadata(&path, BookFormat::Epub, &small_bytes).unwrap();
    assert!(m.cover.is_none());
    assert_eq!(m.title.as_deref(), Some("论语"));
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);

    let few_pixels = Limits { max_image_pixels: 1000, ..Limits::default() };
    let m = quick_metadata(&path, BookFormat::Epub, &few_pixels).unwrap();
    assert!(m.cover.is_none());
    assert!(m.warnings[0].contains("600x900"), "{:?}", m.warnings);
}

#[test]
fn metadata_serializes_without_cover_bytes() {
    let m = meta("zh/lunyu.epub", BookFormat::Epub);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["title"], "论语");
    assert_eq!(json["cover"]["width"], 600);
    assert!(json["cover"].get("bytes").is_none());
}
