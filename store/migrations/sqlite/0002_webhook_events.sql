-- Webhook deliveries already taken (Twilio MessageSid): a retried delivery finds its row and runs nothing.
CREATE TABLE IF NOT EXISTS webhook_events (
    event_id TEXT NOT NULL PRIMARY KEY,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS ix_webhook_events_created ON webhook_events (created_at);
