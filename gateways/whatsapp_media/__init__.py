"""WhatsApp media, delivery status, typing and bursts: the parts the webhook is wired to."""
