#![no_main]
//! PDF quick metadata on arbitrary bytes.

use athena_formats::{quick_metadata, BookFormat, Limits};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::contain_library_panics();
    let path = common::input_file(data);
    if let Ok(meta) = quick_metadata(&path, BookFormat::Pdf, &Limits::default()) {
        if let Some(c) = meta.digitalization_confidence {
            assert!((0.0..=1.0).contains(&c));
        }
    }
});
