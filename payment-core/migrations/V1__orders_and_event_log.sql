-- The PostgreSQL store's schema (payment-core/src/store/postgres.rs); it
-- mirrors the SQLite one. Times are unix milliseconds.

CREATE TABLE orders (
    order_id           text PRIMARY KEY,
    status             text NOT NULL,
    amount_minor       bigint NOT NULL,
    currency           text NOT NULL,
    description        text NOT NULL,
    client_secret      text NOT NULL,
    -- NULLs are distinct: orders without a key never conflict.
    idempotency_key    text UNIQUE,
    created_at         bigint NOT NULL,
    updated_at         bigint NOT NULL,
    expires_at         bigint NOT NULL,
    reason             text NOT NULL DEFAULT '',
    provider_reference text NOT NULL DEFAULT ''
);

-- The expiry sweep's query has this index's condition.
CREATE INDEX orders_open_by_expiry
    ON orders (expires_at) WHERE status IN ('created', 'processing');

-- The log. `sequence` has no default on purpose: it is taken from
-- log_head inside the writing transaction (see log_head below).
CREATE TABLE events (
    sequence           bigint PRIMARY KEY,
    order_id           text NOT NULL REFERENCES orders (order_id),
    status             text NOT NULL,
    reason             text NOT NULL,
    provider_reference text NOT NULL,
    occurred_at        bigint NOT NULL
);

CREATE INDEX events_by_order ON events (order_id, sequence);

CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;

CREATE TRIGGER events_are_append_only_row
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();

CREATE TRIGGER events_are_append_only_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- The last sequence handed out: exactly one row. A writer increments it as
-- the last statements of its transaction and holds its row lock until
-- COMMIT, so sequences are dense and sequence order is commit order (a
-- bigserial is neither: values are taken early and committed in any order).
CREATE TABLE log_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    sequence bigint NOT NULL CHECK (sequence >= 0)
);

INSERT INTO log_head (only_row, sequence) VALUES (true, 0);

CREATE FUNCTION log_head_is_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'log_head has exactly one row';
END;
$$;

CREATE TRIGGER log_head_is_kept_row
    BEFORE INSERT OR DELETE ON log_head
    FOR EACH ROW EXECUTE FUNCTION log_head_is_kept();
