-- The durable job queue and what the worker keeps for OCR. Server-only tables: 0003 attaches the
-- sync capture trigger table by table and none is attached here, so nothing here reaches clients.

CREATE TABLE jobs (
    -- Creation order, the last tie-breaker when claiming (ids are random UUIDs).
    seq               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id                TEXT PRIMARY KEY,
    queue             TEXT NOT NULL CHECK (queue IN ('gpu_high', 'gpu_low', 'cpu_default')),
    kind              TEXT NOT NULL,
    payload           TEXT NOT NULL DEFAULT '{}',
    dedup_key         TEXT,
    state             TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'dead', 'cancelled')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    priority          INTEGER NOT NULL DEFAULT 0,
    run_at            TIMESTAMPTZ NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ,
    last_error        TEXT,
    -- No foreign keys: a job's history outlives its book (the worker finds the book gone).
    user_id           TEXT,
    book_id           TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    updated_at        TIMESTAMPTZ NOT NULL
);
-- Claiming walks this index in (priority, run_at, seq) order for one queue and state.
CREATE INDEX jobs_claim ON jobs (queue, state, priority, run_at, seq);
-- Expired leases of running jobs.
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';
-- One unfinished job per dedup key.
CREATE UNIQUE INDEX jobs_dedup ON jobs (dedup_key) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_book ON jobs (book_id) WHERE book_id IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('succeeded', 'cancelled');

-- OCR output is keyed by content, so the same bytes uploaded by anyone reuse it.
CREATE TABLE ocr_results (
    content_sha256  TEXT PRIMARY KEY,
    engine          TEXT NOT NULL,
    page_count      BIGINT NOT NULL,
    layered_key     TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX ocr_results_layered_key ON ocr_results (layered_key);

CREATE TABLE ocr_pages (
    content_sha256  TEXT NOT NULL,
    page            BIGINT NOT NULL,
    text            TEXT NOT NULL,
    lines           TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (content_sha256, page)
);

CREATE TABLE ocr_charges (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id  TEXT NOT NULL,
    units    BIGINT NOT NULL,
    at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX ocr_charges_user_at ON ocr_charges (user_id, at);
