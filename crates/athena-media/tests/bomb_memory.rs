//! The image bomb in its own test binary, so the process's peak memory belongs to this test alone.

mod common;

use athena_media::{cover_webp, MediaLimits};

/// Peak resident set size of this process in KiB (Linux `VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line")
}

#[test]
fn image_bomb_refusal_uses_bounded_memory() {
    let (_, bytes) = common::epub_cover(&common::corpus().join("bad/image-bomb-cover.epub")).unwrap();
    let before = peak_rss_kib();
    for _ in 0..20 {
        let err = cover_webp(&bytes, &MediaLimits::default()).unwrap_err();
        assert_eq!(err.reason_code(), "image_too_large");
    }
    let grown_kib = peak_rss_kib().saturating_sub(before);
    // Decoding the 30000×30000 picture would need 2.7 GB; refusing it needs next to nothing.
    assert!(grown_kib < 20 * 1024, "peak RSS grew by {grown_kib} KiB");
}
