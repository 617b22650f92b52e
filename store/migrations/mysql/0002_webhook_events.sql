-- Webhook deliveries already taken (Twilio MessageSid): a retried delivery finds its row and runs nothing.
CREATE TABLE IF NOT EXISTS webhook_events (
    event_id VARCHAR(64) NOT NULL,
    source VARCHAR(128) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (event_id),
    KEY ix_webhook_events_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
