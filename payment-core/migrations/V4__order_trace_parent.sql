-- The W3C traceparent each order was created in (payment-core's tracing):
-- the provider's report and each event's delivery join the order's trace.
-- NULL for orders created untraced or before it was recorded.
ALTER TABLE orders ADD COLUMN trace_parent text;
