#![no_main]
//! EPUB quick metadata (container, OPF, nav/NCX, cover) on arbitrary bytes.
//! The first input byte picks the mode: 1, 2, 3 wrap the rest as the chapter, package
//! document or nav of a valid EPUB (see common.rs); anything else is used as the whole file.

use athena_formats::{quick_metadata, BookFormat, Limits};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::epub_input(data);
    if let Ok(meta) = quick_metadata(&path, BookFormat::Epub, &Limits::default()) {
        assert!(meta.toc.iter().all(|e| e.level >= 1 && !e.title.is_empty()));
    }
});
