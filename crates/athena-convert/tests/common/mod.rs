//! Test-only EPUB reading: just enough OPF/NCX/nav parsing and XHTML stripping to check converted text and structure.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

pub fn corpus() -> PathBuf {
    std::env::var_os("ATHENA_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")])
        .find(|d| d.join("truth.json").is_file())
        .expect("the shared corpus (set ATHENA_CORPUS, or keep shared/ next to the repository)")
}

pub struct Epub {
    /// Text of each spine document, in spine order; one line per block element.
    pub spine_texts: Vec<String>,
    /// TOC labels in document order (NCX navPoints, or the EPUB 3 nav when there is no NCX).
    pub toc_labels: Vec<String>,
}

impl Epub {
    pub fn all_text(&self) -> String {
        self.spine_texts.join("\n")
    }
}

fn read_entry(z: &mut zip::ZipArchive<std::fs::File>, name: &str) -> Option<String> {
    let mut e = z.by_name(name).ok()?;
    let mut s = String::new();
    e.by_ref().take(16 << 20).read_to_string(&mut s).ok()?;
    Some(s)
}

/// Value of `attr="…"` (or single quotes) inside one tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0 || rest.as_bytes()[i - 1].is_ascii_whitespace();
        let after = rest[i + name.len()..].trim_start();
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start();
                let q = v.chars().next()?;
                if q == '"' || q == '\'' {
                    let end = v[1..].find(q)?;
                    return Some(v[1..1 + end].to_string());
                }
            }
        }
        rest = &rest[i + name.len()..];
    }
    None
}

/// Every start tag named `name` (with or without a namespace prefix), as the text between `<` and `>`.
fn tags<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = xml[pos..].find('<') {
        let start = pos + i + 1;
        let Some(len) = xml[start..].find('>') else { break };
        let tag = &xml[start..start + len];
        let tag_name = tag.split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or("");
        let local = tag_name.rsplit(':').next().unwrap_or("");
        if local == name {
            out.push(tag);
        }
        pos = start + len;
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn join(base: &str, href: &str) -> String {
    let href = percent_decode(href.split('#').next().unwrap_or(href));
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for seg in href.split('/') {
        match seg {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// XHTML → text: drops `<head>`, `<script>`, `<style>`; block ends become newlines; basic entities decoded.
pub fn strip_xhtml(x: &str) -> String {
    let mut s = x.to_string();
    for el in ["head", "script", "style"] {
        while let Some(i) = s.find(&format!("<{el}")) {
            let close = format!("</{el}>");
            match s[i..].find(&close) {
                Some(j) => s.replace_range(i..i + j + close.len(), ""),
                None => break,
            }
        }
    }
    let mut out = String::new();
    let mut in_tag = false;
    let mut tag = String::new();
    for c in s.chars() {
        if in_tag {
            if c == '>' {
                in_tag = false;
                let name = tag.trim_start_matches('/').split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or("");
                if matches!(name, "p" | "div" | "br" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "li" | "tr" | "section") {
                    out.push('\n');
                }
                tag.clear();
            } else {
                tag.push(c);
            }
        } else if c == '<' {
            in_tag = true;
        } else {
            out.push(c);
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#160;", " ")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

pub fn read_epub(path: &Path) -> Epub {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let container = read_entry(&mut z, "META-INF/container.xml").expect("container.xml");
    let opf_path = tags(&container, "rootfile").iter().find_map(|t| attr(t, "full-path")).expect("rootfile");
    let base = opf_path.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or_default();
    let opf = read_entry(&mut z, &opf_path).expect("opf");
    let items: Vec<(String, String, String)> = tags(&opf, "item")
        .iter()
        .filter_map(|t| Some((attr(t, "id")?, attr(t, "href")?, attr(t, "properties").unwrap_or_default())))
        .collect();
    let href_of = |id: &str| items.iter().find(|(i, _, _)| i == id).map(|(_, h, _)| h.clone());
    let spine_texts = tags(&opf, "itemref")
        .iter()
        .filter_map(|t| attr(t, "idref"))
        .filter_map(|id| href_of(&id))
        .map(|href| read_entry(&mut z, &join(&base, &href)).map(|x| strip_xhtml(&x)).unwrap_or_default())
        .collect();

    let ncx = items.iter().find(|(_, h, _)| h.ends_with(".ncx")).and_then(|(_, h, _)| read_entry(&mut z, &join(&base, h)));
    let toc_labels = match ncx {
        Some(ncx) if ncx.contains("<navPoint") => {
            let map = &ncx[ncx.find("<navMap").unwrap_or(0)..];
            map.split("<navPoint")
                .skip(1)
                .map(|np| {
                    let t = &np[np.find("<text>").map(|i| i + 6).unwrap_or(0)..];
                    t[..t.find("</text>").unwrap_or(0)].trim().to_string()
                })
                .collect()
        }
        _ => {
            let nav = items
                .iter()
                .find(|(_, _, p)| p.split_whitespace().any(|p| p == "nav"))
                .and_then(|(_, h, _)| read_entry(&mut z, &join(&base, h)));
            let nav = nav.unwrap_or_default();
            let toc = nav.find("toc\"").or_else(|| nav.find("toc'")).map(|i| &nav[i..]).unwrap_or("");
            let toc = &toc[..toc.find("</nav>").unwrap_or(toc.len())];
            toc.split("<a")
                .skip(1)
                .map(|a| strip_xhtml(&format!("<a{}", &a[..a.find("</a>").unwrap_or(a.len())])).trim().to_string())
                .collect()
        }
    };
    Epub { spine_texts, toc_labels }
}

/// Removes all whitespace, so that text compares across converters' different line breaking.
pub fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

pub struct Truth {
    pub chapters: usize,
    pub phrases: Vec<String>,
}

pub fn truth(key: &str) -> Truth {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(corpus().join("truth.json")).unwrap()).unwrap();
    let t = &v[key];
    Truth {
        chapters: t["chapters"].as_u64().unwrap() as usize,
        phrases: t["phrases"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect(),
    }
}
