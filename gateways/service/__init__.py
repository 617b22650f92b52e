"""The service layer both APIs and the WhatsApp bot call; it depends on the Conversations port only.

chats.py (ChatService: chats and their listing) <- turns.py (a turn: validate, begin, stream) <-
endings.py (its end: complete, abort or withdraw, retried through store outages);
config.py (ServiceConfig, the few settings it reads); answering.py (the LLM side of a turn),
coalesce.py (its deltas joined into fewer writes towards the client);
branching.py (regenerate, edit, switch, rename, a path, search); titles.py (automatic titles);
owners.py (who owns a chat, before any conversation call); leases.py (a running turn's lease);
events.py (what a turn yields); ids.py, text.py, params.py, paging.py (checked client input);
report.py (a turn's log lines and metrics, through gateways/metrics.py); cache.py (a bounded LRU).
"""
