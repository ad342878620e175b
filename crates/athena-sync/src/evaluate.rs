//! From a captured change to bucket operations, by the sync rules. Pure.

use std::collections::HashSet;

use athena_store::sync::{CapturedChange, OpDraft, OpKind};
use athena_sync_rules::SyncRules;
use sha2::{Digest, Sha256};

/// A 32-bit checksum fixed for an op: the first 4 bytes (little-endian) of SHA-256 over a text that
/// names the op, so identical ops checksum identically on every server.
pub fn op_checksum(text: &str) -> u32 {
    let digest = Sha256::digest(text.as_bytes());
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn row_id(row: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    match row.get("id")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// PUTs for the buckets the new row is in, REMOVEs for the buckets the old row left.
pub fn evaluate(rules: &SyncRules, change: &CapturedChange) -> Vec<OpDraft> {
    let mut out = Vec::new();
    let puts = change.new_row.as_ref().map(|row| rules.evaluate_row(&change.table, row)).unwrap_or_default();
    let kept: HashSet<(&str, &str, &str)> =
        puts.iter().map(|p| (p.bucket.as_str(), p.object_type.as_str(), p.object_id.as_str())).collect();
    if let Some(old) = &change.old_row {
        if let Some(id) = row_id(old) {
            for bucket in rules.buckets_of_row(&change.table, old) {
                if !kept.contains(&(bucket.as_str(), change.table.as_str(), id.as_str())) {
                    out.push(OpDraft {
                        checksum: op_checksum(&format!("delete.{}.{}", change.table, id)),
                        bucket,
                        op: OpKind::Remove,
                        object_type: Some(change.table.clone()),
                        object_id: Some(id.clone()),
                        data: None,
                    });
                }
            }
        }
    }
    for put in puts {
        let data = serde_json::Value::Object(put.data).to_string();
        out.push(OpDraft {
            checksum: op_checksum(&format!("put.{}.{}.{}", put.object_type, put.object_id, data)),
            bucket: put.bucket,
            op: OpKind::Put,
            object_type: Some(put.object_type),
            object_id: Some(put.object_id),
            data: Some(data),
        });
    }
    out
}
