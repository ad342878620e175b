#![no_main]
//! MOBI/AZW3 quick metadata (PalmDB header, EXTH records) on arbitrary bytes.

use athena_formats::{quick_metadata, BookFormat, Limits};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::input_file(data);
    let _ = quick_metadata(&path, BookFormat::Mobi, &Limits::default());
    let _ = quick_metadata(&path, BookFormat::Azw3, &Limits::default());
});
