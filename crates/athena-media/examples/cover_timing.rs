//! Times `cover_webp` over every cover declared by the corpus EPUBs, and `generated_cover`.
//!
//! cargo run --release -p athena-media --example cover_timing [-- --out DIR]
//!
//! With `--out DIR` the WebP results are written there for a visual check.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use athena_media::{cover_webp, generated_cover, MediaLimits};

const ROUNDS: u32 = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut out_dir: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out_dir = args.next().map(PathBuf::from),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if let Some(dir) = &out_dir {
        std::fs::create_dir_all(dir)?;
    }

    let covers = common::corpus_covers();
    let limits = MediaLimits::default();
    let mut total = Duration::ZERO;
    println!("{:<32} {:>11} {:>10} {:>9} {:>9}", "book", "source", "in bytes", "out bytes", "ms/cover");
    for (path, bytes) in &covers {
        let source = image::load_from_memory(bytes)?;
        let mut out = Vec::new();
        let started = Instant::now();
        for _ in 0..ROUNDS {
            out = cover_webp(bytes, &limits)?;
        }
        let per = started.elapsed() / ROUNDS;
        total += per;
        let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        println!(
            "{:<32} {:>11} {:>10} {:>9} {:>9.1}",
            name,
            format!("{}x{}", source.width(), source.height()),
            bytes.len(),
            out.len(),
            per.as_secs_f64() * 1000.0
        );
        if let Some(dir) = &out_dir {
            std::fs::write(dir.join(format!("{name}.webp")), &out)?;
        }
    }
    let n = u32::try_from(covers.len()).unwrap_or(1).max(1);
    println!("cover_webp: {} covers, mean {:.1} ms/cover", covers.len(), (total / n).as_secs_f64() * 1000.0);

    let titles = [
        ("论语", Some("孔子")),
        ("古文觀止", Some("吳楚材、吳調侯")),
        ("Moby-Dick; or, The Whale", Some("Herman Melville")),
        ("The Life and Strange Surprizing Adventures of Robinson Crusoe, of York, Mariner", Some("Daniel Defoe")),
    ];
    // The first call also loads and caches the fonts; time it separately.
    let started = Instant::now();
    generated_cover("warm-up", None, None)?;
    println!("generated_cover first call (font load): {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    let started = Instant::now();
    for (i, (title, author)) in titles.iter().enumerate() {
        let cover = generated_cover(title, *author, None)?;
        if !cover.text_rendered {
            eprintln!("no font found for {title:?}");
        }
        if let Some(dir) = &out_dir {
            std::fs::write(dir.join(format!("generated-{i}.webp")), &cover.webp)?;
        }
    }
    println!("generated_cover: mean {:.1} ms/cover", started.elapsed().as_secs_f64() * 1000.0 / titles.len() as f64);
    Ok(())
}
