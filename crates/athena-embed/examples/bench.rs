//! Speed and memory figures for the embedder on this machine.
//! `cargo run --release -p athena-embed --example bench -- <model file or folder>`

use std::path::PathBuf;
use std::time::Instant;

use athena_embed::{Embedder, TextKind};

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// CPU seconds this process has used (user + system), so figures can be read even when other
/// work shares the cores.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|r| r.1).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    f.iter().sum::<f64>() / 100.0
}

fn main() {
    let path: PathBuf = std::env::args_os().nth(1).expect("model path").into();
    let t = Instant::now();
    let m = Embedder::load(&path).expect("model loads");
    println!(
        "load: {:.0} ms, RSS after load {} MiB (peak {} MiB), threads {}, model {}",
        t.elapsed().as_secs_f64() * 1e3,
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmHWM:") / 1024,
        rayon::current_num_threads(),
        m.model_id()
    );

    let queries = [
        "how do I renew my library card?",
        "如何提高睡眠质量？",
        "best books about the history of Rome",
        "電子書閱讀器可以做筆記嗎？",
        "what did the author say about free will in chapter three",
    ];
    for q in queries {
        m.embed_query(q).unwrap(); // warm-up
    }
    let rounds = 20;
    let t = Instant::now();
    for _ in 0..rounds {
        for q in queries {
            m.embed_query(q).unwrap();
        }
    }
    let per_query = t.elapsed().as_secs_f64() * 1e3 / (rounds * queries.len()) as f64;
    let avg_tokens: usize = queries.iter().map(|q| m.token_ids(q, TextKind::Query).len() + 2).sum::<usize>() / queries.len();
    println!("query: {per_query:.1} ms each (about {avg_tokens} tokens)");

    // Passages of book-chunk size (~130-250 tokens), mixed English and Chinese.
    let en = "The librarian catalogued the collected letters, noting marginalia, water damage and a pressed flower between the leaves of the third volume. ";
    let zh = "图书管理员整理了书信集，记录了页边批注、水渍以及夹在第三卷书页之间的压花。";
    let passages: Vec<String> =
        (0..48).map(|i| if i % 2 == 0 { format!("{i}. {}", en.repeat(4)) } else { format!("{i}. {}", zh.repeat(5)) }).collect();
    let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
    let tokens: usize = refs.iter().map(|p| m.token_ids(p, TextKind::Passage).len() + 2).sum();
    m.embed_passages(&refs[..4]).unwrap();
    let (t, cpu) = (Instant::now(), cpu_seconds());
    m.embed_passages(&refs).unwrap();
    let (s, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    println!(
        "passages: {} texts, {tokens} tokens in {:.2} s = {:.0} tokens/s, {:.1} ms/passage; {:.0} tokens per CPU-second",
        refs.len(),
        s,
        tokens as f64 / s,
        s * 1e3 / refs.len() as f64,
        tokens as f64 / cpu
    );

    // One full 512-position window.
    let long = en.repeat(20);
    let n = m.token_ids(&long, TextKind::Passage).len();
    let t = Instant::now();
    m.embed(&long, TextKind::Passage).unwrap();
    println!("one text of {n} tokens: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    // The worst case the input cap allows: 64 KiB of one-letter words, one token per two bytes.
    let hostile = "a ".repeat(athena_embed::MAX_INPUT_BYTES / 2 + 100);
    let n = m.token_ids(&hostile, TextKind::Passage).len();
    let t = Instant::now();
    m.embed(&hostile, TextKind::Passage).unwrap();
    println!("capped hostile input, {n} tokens: {:.1} s", t.elapsed().as_secs_f64());
    println!("peak RSS {} MiB", rss_kib("VmHWM:") / 1024);
}
