//! One sync stream: a checkpoint, the data the client lacks, `checkpoint_complete`; then a
//! `checkpoint_diff` round for every change to the user's buckets; keep-alives; closed at token
//! expiry. Lines go through a small bounded channel, so a client that stops reading stops the
//! producer instead of growing memory.

use std::collections::HashMap;
use std::time::Instant;

use athena_store::sync::{BucketState, OpKind};
use athena_sync_rules::BucketRef;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::protocol::*;
use crate::service::Inner;

/// Why a stream ended early (the client is gone, or storage failed).
#[derive(Debug)]
pub(crate) enum StreamEnd {
    ClientGone,
    Storage(athena_store::StoreError),
}

impl From<athena_store::StoreError> for StreamEnd {
    fn from(e: athena_store::StoreError) -> Self {
        Self::Storage(e)
    }
}

pub(crate) struct StreamContext {
    pub user_id: String,
    pub client_id: Option<String>,
    pub buckets: Vec<BucketRef>,
    /// The client's position per bucket (absent: 0).
    pub positions: HashMap<String, i64>,
    pub expires_at: DateTime<Utc>,
    pub format: WireFormat,
}

/// Soft limit of one data line's payload: room for `SyncConfig::ops_per_line` ops of ordinary rows.
/// With one line queued per stream (`routes`), what a stream holds for a client that does not read
/// stays around two lines.
const MAX_LINE_BYTES: usize = 6 << 20;

fn op_size(op: &athena_store::sync::OplogEntry) -> usize {
    // The JSON text roughly doubles escaped quotes; a close upper bound is enough here.
    96 + op.data.as_ref().map_or(0, |d| d.len() * 5 / 4) + op.object_id.as_ref().map_or(0, String::len)
}

fn op_line(op: &athena_store::sync::OplogEntry) -> OpLine<'_> {
    let row_op = matches!(op.op, OpKind::Put | OpKind::Remove);
    OpLine {
        op_id: op.op_id.to_string(),
        op: op.op.as_str(),
        object_type: if row_op { op.object_type.as_deref() } else { None },
        object_id: if row_op { op.object_id.as_deref() } else { None },
        data: if op.op == OpKind::Put { op.data.as_deref() } else { None },
        checksum: op.checksum,
        subkey: None,
    }
}

struct Stream<'a> {
    inner: &'a Inner,
    ctx: StreamContext,
    out: mpsc::Sender<Bytes>,
    /// What the client was told about each bucket in the last checkpoint.
    sent: HashMap<String, BucketState>,
    last_write_checkpoint: Option<i64>,
    /// A CLEAR went out in the current round: compaction may have moved live rows past the
    /// checkpoint being sent, so the round is extended before it is completed.
    saw_clear: bool,
}

impl Stream<'_> {
    async fn send(&self, line: Line<'_>) -> Result<(), StreamEnd> {
        let bytes = line.encode(self.ctx.format);
        metrics::counter!("powersync_bytes_sent_total").increment(bytes.len() as u64);
        self.out.send(bytes).await.map_err(|_| StreamEnd::ClientGone)
    }

    fn names(&self) -> Vec<String> {
        self.ctx.buckets.iter().map(|b| b.name.clone()).collect()
    }

    fn priority(&self, bucket: &str) -> u8 {
        self.ctx.buckets.iter().find(|b| b.name == bucket).map(|b| b.priority).unwrap_or(3)
    }

    fn checksum_line(&self, s: &BucketState) -> BucketChecksum {
        BucketChecksum { bucket: s.bucket.clone(), checksum: s.checksum, count: s.count, priority: self.priority(&s.bucket) }
    }

    async fn write_checkpoint(&self, last_op_id: i64) -> Result<Option<i64>, StreamEnd> {
        match &self.ctx.client_id {
            Some(client) => Ok(self.inner.store.write_checkpoint_at(&self.ctx.user_id, client, last_op_id).await?),
            None => Ok(None),
        }
    }

    /// Sends the ops of `bucket` after the client's position up to `until`, in bounded lines.
    async fn send_data(&mut self, bucket: &str, until: i64) -> Result<(), StreamEnd> {
        let mut after = self.ctx.positions.get(bucket).copied().unwrap_or(0);
        let limit = self.inner.config.ops_per_line;
        while after < until {
            let ops = self.inner.store.ops_after(bucket, after, until, limit).await?;
            let Some(last) = ops.last().map(|o| o.op_id) else { break };
            let has_more = ops.len() as u32 == limit && last < until;
            let now = Utc::now();
            for op in &ops {
                if let Some(at) = op.captured_at {
                    let lag = (now - at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                    metrics::histogram!("powersync_sync_lag_ms").record(lag.max(0.0));
                }
            }
            self.saw_clear |= ops.iter().any(|op| op.op == OpKind::Clear);
            // Lines stay under MAX_LINE_BYTES, so what a stream buffers for a client that reads
            // slowly is bounded in bytes, not only in lines.
            let mut start = 0;
            while start < ops.len() {
                let mut end = start;
                let mut size = 0usize;
                while end < ops.len() && (end == start || size + op_size(&ops[end]) <= MAX_LINE_BYTES) {
                    size += op_size(&ops[end]);
                    end += 1;
                }
                let chunk = &ops[start..end];
                let chunk_after = if start == 0 { after } else { ops[start - 1].op_id };
                let chunk_last = chunk[chunk.len() - 1].op_id;
                let more = has_more || end < ops.len();
                let lines: Vec<OpLine<'_>> = chunk.iter().map(op_line).collect();
                metrics::counter!("powersync_ops_sent_total").increment(lines.len() as u64);
                let line = Line::Data(DataLine {
                    bucket,
                    data: lines,
                    has_more: more,
                    after: chunk_after.to_string(),
                    next_after: chunk_last.to_string(),
                });
                let bytes = line.encode(self.ctx.format);
                drop(line);
                metrics::counter!("powersync_bytes_sent_total").increment(bytes.len() as u64);
                self.out.send(bytes).await.map_err(|_| StreamEnd::ClientGone)?;
                start = end;
            }
            after = last;
            if !has_more {
                break;
            }
        }
        self.ctx.positions.insert(bucket.to_string(), until);
        Ok(())
    }

    async fn first_checkpoint(&mut self) -> Result<i64, StreamEnd> {
        let cp = self.inner.store.log_checkpoint(&self.names()).await?;
        let wcp = self.write_checkpoint(cp.last_op_id).await?;
        self.send(Line::Checkpoint(Checkpoint {
            last_op_id: cp.last_op_id.to_string(),
            write_checkpoint: wcp.map(|w| w.to_string()),
            buckets: cp.buckets.iter().map(|b| self.checksum_line(b)).collect(),
        }))
        .await?;
        // Highest priority first, so clients can show urgent buckets early.
        let mut order: Vec<&BucketState> = cp.buckets.iter().collect();
        order.sort_by_key(|b| self.priority(&b.bucket));
        for state in order {
            let position = self.ctx.positions.get(&state.bucket).copied().unwrap_or(0);
            if state.last_op_id > position {
                self.send_data(&state.bucket, cp.last_op_id).await?;
            } else {
                self.ctx.positions.insert(state.bucket.clone(), position.max(0));
            }
        }
        self.sent = cp.buckets.into_iter().map(|b| (b.bucket.clone(), b)).collect();
        self.last_write_checkpoint = wcp;
        let last = self.extend_after_clear(cp.last_op_id).await?;
        self.send(Line::CheckpointComplete(Complete { last_op_id: last.to_string() })).await?;
        Ok(last)
    }

    /// If a CLEAR was sent, the bucket may have been compacted while this round was read: its live
    /// rows then sit after the checkpoint. A newer checkpoint (a diff, which supersedes the
    /// incomplete one) brings them into the same round, so clients never apply the gap.
    async fn extend_after_clear(&mut self, mut last_op_id: i64) -> Result<i64, StreamEnd> {
        while std::mem::take(&mut self.saw_clear) {
            match self.diff(false).await? {
                Some(last) => last_op_id = last,
                None => break,
            }
        }
        Ok(last_op_id)
    }

    /// Sends a `checkpoint_diff` and the data of the buckets that changed since the client was last
    /// told, if any changed (or, with `on_write_checkpoint`, if its write checkpoint moved).
    /// Returns the diff's op id, or None when there was nothing to say.
    async fn diff(&mut self, on_write_checkpoint: bool) -> Result<Option<i64>, StreamEnd> {
        let cp = self.inner.store.log_checkpoint(&self.names()).await?;
        let wcp = self.write_checkpoint(cp.last_op_id).await?;
        let updated: Vec<BucketState> = cp.buckets.iter().filter(|b| self.sent.get(&b.bucket) != Some(*b)).cloned().collect();
        let wcp_changed = on_write_checkpoint && wcp.is_some() && wcp != self.last_write_checkpoint;
        if updated.is_empty() && !wcp_changed {
            return Ok(None);
        }
        self.send(Line::CheckpointDiff(CheckpointDiff {
            last_op_id: cp.last_op_id.to_string(),
            // Always repeated when known: clients take a diff without it as "none".
            write_checkpoint: wcp.map(|w| w.to_string()),
            updated_buckets: updated.iter().map(|b| self.checksum_line(b)).collect(),
            removed_buckets: vec![],
        }))
        .await?;
        for state in &updated {
            self.send_data(&state.bucket, cp.last_op_id).await?;
        }
        for state in updated {
            self.sent.insert(state.bucket.clone(), state);
        }
        self.last_write_checkpoint = wcp;
        Ok(Some(cp.last_op_id))
    }

    /// A diff round if anything changed for this client; returns the new checkpoint id.
    async fn next_checkpoint(&mut self, current: i64) -> Result<i64, StreamEnd> {
        let Some(last) = self.diff(true).await? else { return Ok(current) };
        let last = self.extend_after_clear(last).await?;
        self.send(Line::CheckpointComplete(Complete { last_op_id: last.to_string() })).await?;
        Ok(last)
    }
}

/// Runs one stream until the client leaves, the token expires or the server stops.
pub(crate) async fn run(
    inner: &Inner,
    ctx: StreamContext,
    out: mpsc::Sender<Bytes>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), StreamEnd> {
    let started = Instant::now();
    let user = ctx.user_id.clone();
    let mut advances = inner.advances.subscribe();
    let mut write_checkpoints = inner.write_checkpoints.subscribe();
    let mut stream = Stream { inner, ctx, out, sent: HashMap::new(), last_write_checkpoint: None, saw_clear: false };
    let mut current = stream.first_checkpoint().await?;
    tracing::debug!(user, ms = started.elapsed().as_millis() as u64, "sync stream caught up");
    let keepalive = inner.config.keepalive;
    loop {
        let remaining = (stream.ctx.expires_at - Utc::now()).num_seconds();
        if remaining <= 0 {
            stream.send(Line::TokenExpiresIn(0)).await?;
            return Ok(());
        }
        let until_expiry = std::time::Duration::from_secs(remaining as u64);
        tokio::select! {
            _ = crate::stopped(&mut stop) => return Ok(()),
            _ = stream.out.closed() => return Err(StreamEnd::ClientGone),
            advance = advances.recv() => {
                match advance {
                    Ok(a) => {
                        let mine = a.buckets.as_ref().is_none_or(|changed| stream.ctx.buckets.iter().any(|b| changed.contains(&b.name)));
                        if a.last_op_id > current && mine {
                            current = stream.next_checkpoint(current).await?;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => { current = stream.next_checkpoint(current).await?; }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
            event = write_checkpoints.recv() => {
                match event {
                    Ok(u) if u == user => { current = stream.next_checkpoint(current).await?; }
                    Ok(_) => {}
                    // Missed some: check once, cheaply.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => { current = stream.next_checkpoint(current).await?; }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
            _ = tokio::time::sleep(keepalive.min(until_expiry)) => {
                let remaining = (stream.ctx.expires_at - Utc::now()).num_seconds().max(0);
                stream.send(Line::TokenExpiresIn(remaining)).await?;
                if remaining == 0 { return Ok(()); }
            }
        }
    }
}
