//! The sync role: the PowerSync protocol (`SYNC-PROTOCOL.md`) served from the database's own change
//! log, so the official PowerSync clients connect unchanged.
//!
//! How it runs:
//! 1. Triggers on the synced tables capture every committed change (`sync_changes`), whoever wrote it.
//! 2. The **sequencer** ([`SyncService::run`]) turns captured changes into bucket operations with the
//!    sync rules and appends them to the op log with fresh, increasing op ids — one sequencer at a
//!    time per database, only over committed changes, so op ids follow commit order.
//! 3. Each **stream** (`POST /sync/stream`) sends a checkpoint of the user's buckets, the ops the
//!    client lacks, `checkpoint_complete`, then a `checkpoint_diff` for every later change, with
//!    `token_expires_in` keep-alives, and closes when the token expires. Lines are NDJSON or BSON (what
//!    the client prefers), gzipped when the client accepts it, with no compressor held per stream.
//! 4. **Write checkpoints** (`GET /write-checkpoint2.json`) tell a client when the op log covers its
//!    own acknowledged uploads.
//! 5. The **compactor** rewrites buckets whose history is mostly superseded into one CLEAR plus the
//!    live rows, keeping every client's checksums valid.
//!
//! This crate knows the protocol and the rules; SQL lives behind `athena_store::sync::SyncStore`,
//! authentication in `athena_app`. It knows nothing of the REST API.

mod evaluate;
mod gzip;
mod metrics;
mod protocol;
mod routes;
mod service;
mod stream;

pub use evaluate::{evaluate, op_checksum};
pub use metrics::install_descriptions;
pub use routes::router;
pub use service::{SyncConfig, SyncService};

/// Resolves once `stop` turns true (or its sender is gone). The guard `wait_for` returns is not
/// `Send`, so it is dropped here rather than held in a `select!`.
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
