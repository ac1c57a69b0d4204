-- The merchant whose API key created each order (payment-core's auth):
-- merchant keys see and cancel only their own orders. NULL for orders from
-- before it was recorded, which every merchant may see.
ALTER TABLE orders ADD COLUMN merchant text;
