-- `unpriced`: the row's model had no price of its own (no deployment
-- `price:`, not in the bundled table), so `cost` is the provider's
-- `default_price` estimate, or 0. Additive, with a default: rows written
-- before it read as priced, and ADD COLUMN with a constant default is a
-- metadata-only change on both SQLite and PostgreSQL (no table rewrite).
ALTER TABLE usage_log ADD COLUMN unpriced SMALLINT NOT NULL DEFAULT 0;
