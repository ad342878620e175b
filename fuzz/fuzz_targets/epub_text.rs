#![no_main]
//! EPUB text extraction on arbitrary bytes, checking the invariants callers rely on.
//! The first input byte picks the mode: 1, 2, 3 wrap the rest as the chapter, package
//! document or nav of a valid EPUB (see common.rs); anything else is used as the whole file.

use athena_formats::{extract_epub_text, Limits};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::epub_input(data);
    // A small text cap so the truncation path is reached by small inputs too.
    let limits = Limits { max_text_chars: 4096, ..Limits::default() };
    let mut chars = 0u64;
    let mut last_index: Option<u32> = None;
    let result = extract_epub_text(&path, &limits, &mut |s| {
        assert!(!s.text.is_empty(), "empty section emitted");
        assert!(s.location.starts_with("epubcfi(/") && s.location.ends_with(')'), "bad CFI {}", s.location);
        assert!(last_index < Some(s.index), "sections out of spine order");
        last_index = Some(s.index);
        chars += s.text.chars().count() as u64;
        Ok(())
    });
    if let Ok(summary) = result {
        assert_eq!(summary.chars, chars);
        assert!(summary.chars <= limits.max_text_chars);
    }
});
