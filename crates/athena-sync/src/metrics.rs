//! The sync metrics the seed's dashboards read (served on the metrics port, 49091).

/// Registers descriptions so `/metrics` explains each series.
pub fn install_descriptions() {
    metrics::describe_gauge!("powersync_active_connections", "open sync streams");
    metrics::describe_histogram!("powersync_sync_lag_ms", "milliseconds from a change's capture (commit) to its op being sent");
    metrics::describe_gauge!("powersync_upload_queue_size", "captured changes waiting for the sequencer");
    metrics::describe_counter!("powersync_ops_sent_total", "operations sent to clients");
    metrics::describe_counter!("powersync_bytes_sent_total", "bytes of sync lines sent to clients (before compression)");
    metrics::describe_counter!("powersync_streams_opened_total", "sync streams opened, by line format (ndjson, bson) and gzip");
    metrics::describe_counter!("powersync_changes_sequenced_total", "captured changes turned into operations");
    metrics::describe_counter!("powersync_ops_created_total", "operations appended to the log");
    metrics::describe_counter!("powersync_ops_compacted_total", "superseded operations removed by compaction");
}
