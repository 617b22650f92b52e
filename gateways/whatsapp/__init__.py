"""The WhatsApp bot over Twilio: the webhook and everything it is wired to.

rules.py (pure: chat ids of senders, commands, splitting answers); webhook.py (POST /twilio/whatsapp:
the signature, the form, the routes); served.py (the parts one process serves it with);
responder.py (answering verified deliveries); inbound.py (a message's media made ready for its
turn); callbacks.py (delivery status); bursts.py (short messages answered as one turn); outbox.py and
rest.py (answers sent through the REST API); fetch.py, content.py, images.py (image messages);
audio.py and transcribe.py (voice notes); replies.py (what the bot says about media); metrics.py.
"""
