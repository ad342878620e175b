//! The wire format of the PowerSync protocol (see `SYNC-PROTOCOL.md`): the client's request and the
//! NDJSON lines the server sends. Op ids are decimal strings on the wire; checksums are numbers.

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

impl Line<'_> {
    /// The line as NDJSON: compact JSON and one `\n` (never an empty line).
    pub fn encode(&self) -> bytes::Bytes {
        let mut out = serde_json::to_vec(self).expect("sync lines always serialise");
        out.push(b'\n');
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
        let text = String::from_utf8(line.encode().to_vec()).unwrap();
        assert_eq!(
            text,
            "{\"checkpoint\":{\"last_op_id\":\"42\",\"buckets\":[{\"bucket\":\"b\",\"checksum\":7,\"count\":1,\"priority\":3}]}}\n"
        );
        let text = String::from_utf8(Line::TokenExpiresIn(20).encode().to_vec()).unwrap();
        assert_eq!(text, "{\"token_expires_in\":20}\n");
        let complete = String::from_utf8(Line::CheckpointComplete(Complete { last_op_id: "1".into() }).encode().to_vec()).unwrap();
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
}
