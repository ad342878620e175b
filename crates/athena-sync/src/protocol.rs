//! The wire format of the PowerSync protocol (see `SYNC-PROTOCOL.md`): the client's request and the
//! lines the server sends, as NDJSON or as BSON documents. Op ids are decimal strings on the wire;
//! checksums are numbers.

use serde::{Deserialize, Serialize};

/// Largest request body accepted on `/sync/stream`.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Most buckets a request may list (more are a client bug or an attack).
pub const MAX_REQUEST_BUCKETS: usize = 1000;

#[derive(Debug, Default, Deserialize)]
pub struct StreamRequest {
    #[serde(default)]
    pub buckets: Vec<BucketRequest>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
    // Fields the clients send that this server does not need (include_checksum, raw_data,
    // binary_data, streams, app_metadata) are tolerated by not being denied.
}

#[derive(Debug, Deserialize)]
pub struct BucketRequest {
    pub name: String,
    /// The client's position in the bucket, a decimal string (numbers tolerated).
    pub after: serde_json::Value,
}

impl BucketRequest {
    pub fn after(&self) -> Option<i64> {
        match &self.after {
            serde_json::Value::String(s) => s.trim().parse().ok(),
            serde_json::Value::Number(n) => n.as_i64(),
            _ => None,
        }
        .filter(|v| *v >= 0)
    }
}

#[derive(Debug, Serialize)]
pub struct BucketChecksum {
    pub bucket: String,
    pub checksum: u32,
    pub count: i64,
    pub priority: u8,
}

#[derive(Debug, Serialize)]
pub struct Checkpoint {
    pub last_op_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_checkpoint: Option<String>,
    pub buckets: Vec<BucketChecksum>,
}

#[derive(Debug, Serialize)]
pub struct CheckpointDiff {
    pub last_op_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_checkpoint: Option<String>,
    pub updated_buckets: Vec<BucketChecksum>,
    pub removed_buckets: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct OpLine<'a> {
    pub op_id: String,
    pub op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a str>,
    pub checksum: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subkey: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct DataLine<'a> {
    pub bucket: &'a str,
    pub data: Vec<OpLine<'a>>,
    pub has_more: bool,
    pub after: String,
    pub next_after: String,
}

#[derive(Debug, Serialize)]
pub struct Complete {
    pub last_op_id: String,
}

/// One line of the stream; each serialises to an object with exactly one key.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Line<'a> {
    Checkpoint(Checkpoint),
    CheckpointDiff(CheckpointDiff),
    Data(DataLine<'a>),
    CheckpointComplete(Complete),
    TokenExpiresIn(i64),
}

/// How a stream's lines are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireFormat {
    /// One compact JSON object per line.
    Ndjson,
    /// BSON documents back to back (each starts with its length). The official clients ask for it
    /// first: row data then reaches their core as a plain string, without JSON escaping.
    Bson,
}

const NDJSON: &str = "application/x-ndjson";
const BSON: &str = "application/vnd.powersync.bson-stream";

impl WireFormat {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ndjson => "ndjson",
            Self::Bson => "bson",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => NDJSON,
            Self::Bson => BSON,
        }
    }

    /// From the request's `Accept` header: BSON when the client lists it with a quality at least
    /// that of NDJSON; NDJSON otherwise (also for clients that send no `Accept`).
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else { return Self::Ndjson };
        let quality = |wanted: &str| {
            accept.split(',').find_map(|item| {
                let mut parts = item.split(';').map(str::trim);
                if !parts.next()?.eq_ignore_ascii_case(wanted) {
                    return None;
                }
                let q = parts.find_map(|p| p.strip_prefix("q=")).map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                Some(q)
            })
        };
        match (quality(BSON), quality(NDJSON)) {
            (Some(b), ndjson) if b > 0.0 && b >= ndjson.unwrap_or(0.0) => Self::Bson,
            _ => Self::Ndjson,
        }
    }
}

impl Line<'_> {
    /// The line in the stream's framing: compact JSON and one `\n` (never an empty line), or one
    /// BSON document.
    pub fn encode(&self, format: WireFormat) -> bytes::Bytes {
        let out = match format {
            WireFormat::Ndjson => {
                let mut out = serde_json::to_vec(self).expect("sync lines always serialise");
                out.push(b'\n');
                out
            }
            // Only strings, booleans, integers that fit i64 and nested objects/arrays: always encodable.
            WireFormat::Bson => bson::serialize_to_vec(self).expect("sync lines always serialise to BSON"),
        };
        bytes::Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_one_key_and_string_op_ids() {
        let line = Line::Checkpoint(Checkpoint {
            last_op_id: "42".into(),
            write_checkpoint: None,
            buckets: vec![BucketChecksum { bucket: "b".into(), checksum: 7, count: 1, priority: 3 }],
        });
        let text = String::from_utf8(line.encode(WireFormat::Ndjson).to_vec()).unwrap();
        assert_eq!(
            text,
            "{\"checkpoint\":{\"last_op_id\":\"42\",\"buckets\":[{\"bucket\":\"b\",\"checksum\":7,\"count\":1,\"priority\":3}]}}\n"
        );
        let text = String::from_utf8(Line::TokenExpiresIn(20).encode(WireFormat::Ndjson).to_vec()).unwrap();
        assert_eq!(text, "{\"token_expires_in\":20}\n");
        let complete =
            String::from_utf8(Line::CheckpointComplete(Complete { last_op_id: "1".into() }).encode(WireFormat::Ndjson).to_vec()).unwrap();
        assert_eq!(complete, "{\"checkpoint_complete\":{\"last_op_id\":\"1\"}}\n");
    }

    #[test]
    fn after_accepts_strings_and_numbers_only_when_non_negative() {
        let parse = |v: serde_json::Value| BucketRequest { name: "b".into(), after: v }.after();
        assert_eq!(parse(serde_json::json!("12")), Some(12));
        assert_eq!(parse(serde_json::json!(12)), Some(12));
        assert_eq!(parse(serde_json::json!("-1")), None);
        assert_eq!(parse(serde_json::json!("x")), None);
    }

    #[test]
    fn bson_lines_carry_the_same_fields_as_json() {
        let op = OpLine {
            op_id: "7".into(),
            op: "PUT",
            object_type: Some("shelves"),
            object_id: Some("s1"),
            data: Some("{\"name\":\"Poetry \\\"诗\\\"\"}"),
            checksum: u32::MAX,
            subkey: None,
        };
        let line =
            Line::Data(DataLine { bucket: "user_data[\"u\"]", data: vec![op], has_more: false, after: "0".into(), next_after: "7".into() });
        let bytes = line.encode(WireFormat::Bson);
        // A BSON document announces its own length.
        assert_eq!(i32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize, bytes.len());
        let doc = bson::Document::from_reader(&bytes[..]).unwrap();
        let data = doc.get_document("data").unwrap();
        assert_eq!(data.get_str("bucket").unwrap(), "user_data[\"u\"]");
        assert_eq!(data.get_str("next_after").unwrap(), "7");
        assert!(!data.get_bool("has_more").unwrap());
        let op = data.get_array("data").unwrap()[0].as_document().unwrap();
        assert_eq!(op.get_str("op_id").unwrap(), "7");
        assert_eq!(op.get_str("data").unwrap(), "{\"name\":\"Poetry \\\"诗\\\"\"}");
        assert_eq!(op.get_i64("checksum").unwrap(), i64::from(u32::MAX));
        assert!(!op.contains_key("subkey"));
        let keepalive = bson::Document::from_reader(&Line::TokenExpiresIn(20).encode(WireFormat::Bson)[..]).unwrap();
        assert_eq!(keepalive.get("token_expires_in").and_then(bson::Bson::as_i64), Some(20));
    }

    #[test]
    fn bson_only_when_the_client_prefers_it() {
        use WireFormat::*;
        let pick = |h: Option<&str>| WireFormat::negotiate(h);
        assert_eq!(pick(None), Ndjson);
        assert_eq!(pick(Some("*/*")), Ndjson);
        assert_eq!(pick(Some("application/x-ndjson")), Ndjson);
        assert_eq!(pick(Some("application/vnd.powersync.bson-stream;q=0.9,application/x-ndjson;q=0.8")), Bson);
        assert_eq!(pick(Some("application/vnd.powersync.bson-stream")), Bson);
        assert_eq!(pick(Some("application/vnd.powersync.bson-stream;q=0.5, application/x-ndjson")), Ndjson);
        assert_eq!(pick(Some("application/vnd.powersync.bson-stream;q=0")), Ndjson);
        assert_eq!(pick(Some("application/vnd.powersync.bson-stream;q=oops")), Ndjson);
    }
}
