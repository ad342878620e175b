//! Opaque page cursors: the offset of the next page and a fingerprint of the query, so a cursor
//! replayed with another query (or another user) is refused instead of paging something else.
//! Public so that engines in other crates page exactly as the embedded one does.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::{Query, Result, SearchError};

/// Deepest offset a cursor may carry; beyond it paging costs more than it is worth.
pub const MAX_OFFSET: usize = 10_000;

/// The cursor of the page that starts at `offset` of `q`'s results.
pub fn encode(offset: usize, q: &Query) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1.{offset}.{:016x}", fingerprint(q)))
}

/// The offset a cursor points at; 0 without one.
pub fn decode(q: &Query) -> Result<usize> {
    let Some(cursor) = &q.cursor else { return Ok(0) };
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| SearchError::InvalidCursor)?;
    let raw = std::str::from_utf8(&raw).map_err(|_| SearchError::InvalidCursor)?;
    let mut parts = raw.split('.');
    let (Some("v1"), Some(offset), Some(fp), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(SearchError::InvalidCursor);
    };
    let offset: usize = offset.parse().map_err(|_| SearchError::InvalidCursor)?;
    if fp != format!("{:016x}", fingerprint(q)) || offset > MAX_OFFSET {
        return Err(SearchError::InvalidCursor);
    }
    Ok(offset)
}

/// FNV-1a over everything that decides the result list (not the limit, which may change between
/// pages). Stable across builds, unlike `DefaultHasher`.
fn fingerprint(q: &Query) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |s: &str| {
        for b in s.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(&q.text);
    feed(&q.user_id);
    let mut kinds: Vec<&str> = q.kinds.iter().map(|k| k.as_str()).collect();
    kinds.sort_unstable();
    kinds.into_iter().for_each(&mut feed);
    feed("|");
    if let Some(ids) = &q.book_ids {
        let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        ids.sort_unstable();
        ids.into_iter().for_each(&mut feed);
    }
    feed("|");
    let mut allowed: Vec<&str> = q.allowed_content.iter().map(String::as_str).collect();
    allowed.sort_unstable();
    allowed.into_iter().for_each(&mut feed);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_queries() {
        let q = Query { text: "whale".into(), user_id: "u1".into(), ..Default::default() };
        let c = encode(20, &q);
        assert_eq!(decode(&Query { cursor: Some(c.clone()), limit: 5, ..q.clone() }).unwrap(), 20);
        let other = Query { text: "whales".into(), cursor: Some(c.clone()), ..q.clone() };
        assert!(matches!(decode(&other), Err(SearchError::InvalidCursor)));
        let other_user = Query { user_id: "u2".into(), cursor: Some(c), ..q.clone() };
        assert!(matches!(decode(&other_user), Err(SearchError::InvalidCursor)));
        assert!(matches!(decode(&Query { cursor: Some("%%".into()), ..q }), Err(SearchError::InvalidCursor)));
    }
}
