-- 0010_kept_count: OPENSEARCH_KEEP_QUERY. Index copies without a MongoDB
-- document that match the mirror's keep clause are kept on purpose (an
-- archive of documents MongoDB expired): never orphans, never deleted. A
-- run counts them, up to its cursor (so a resumed run goes on counting).
ALTER TABLE runs ADD COLUMN kept_count INTEGER NOT NULL DEFAULT 0;
