"""`chatservice serve`'s start-up around gateways/serve.py.

startup.py (claim the ports, migrate, start Ray while the gateways load); ports.py; raynode.py
(start or join Ray); capacity.py (live chats x nodes + pools within max_connections);
readiness.py (do the store and Ray answer: /readyz and gRPC health).
"""
