"""The grpc.aio API (named rpc so that it does not shadow the grpc library).

server.py (the server: both services, health, reflection, auth, graceful stop); v1.py, branches.py
and convert.py (chatservice.v1); legacy.py (the original ChatStream); calls.py and errors.py (the error
tree as status codes); decoding.py; auth.py; health_status.py (grpc.health.v1 from readiness);
terminal.py (`chatservice chat`); codegen.py regenerates gen/ from proto/.
"""
