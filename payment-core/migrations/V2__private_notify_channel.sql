-- The channel this log's NOTIFYs go to, random per log (payment-core's
-- PostgreSQL store, payment-core/src/store/postgres/). Notifications carry
-- events, and any role that can connect may LISTEN or NOTIFY on a channel
-- whose name it knows: a name only the roles that can read log_head know
-- keeps others from reading or forging them, and keeps two logs in one
-- database (two schemas) from hearing each other.
ALTER TABLE log_head
    ADD COLUMN notify_channel text NOT NULL
    DEFAULT ('payment_events_' || md5(gen_random_uuid()::text));
