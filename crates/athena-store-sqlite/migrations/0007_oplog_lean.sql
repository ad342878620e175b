-- The op log keeps only the indexes its readers use: by op id and by (bucket, op id). The index by
-- (bucket, object) served nothing on the hot path, yet every sequenced op paid a random-order insert
-- into it; compaction groups a bucket's ops by object through the (bucket, op id) index instead.
DROP INDEX IF EXISTS sync_oplog_bucket_object;
