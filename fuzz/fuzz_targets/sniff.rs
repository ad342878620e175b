#![no_main]
//! Format sniffing, then the full upload path (`inspect_file`) for whatever was sniffed.

use athena_formats::{inspect_file, sniff_file, FormatError, Limits};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    // inspect_file reaches lopdf for anything sniffed as PDF.
    common::contain_library_panics();
    let path = common::input_file(data);
    let sniffed = sniff_file(&path);
    assert_eq!(data.is_empty(), matches!(sniffed, Err(FormatError::Empty)), "empty iff Empty");
    if let Ok(format) = sniffed {
        if let Ok((again, _)) = inspect_file(&path, &Limits::default()) {
            assert_eq!(again, format, "sniffing is deterministic");
        }
    }
});
