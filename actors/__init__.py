"""The conversations: one chat's turn protocol, its Ray actor, and how gateways reach them.

Pure rules (no Ray, no I/O): window.py (what the model sees, eviction), turns.py (the turn slot),
ratelimit.py, names.py. The Ray-free conversation: state.py (what it holds, load) <- chatops.py
(create, describe, end, delete) <- branches.py (the message tree, switch, rename) <- endings.py
(complete, abort, shrink, renew, adopt) <- conversation.py (begin, withdraw). protocol.py: the
records that cross the port. The port: port.py (Conversations); its implementations router.py (Ray:
one actor.py per chat, admitted by directory.py with liveset.py under a cap per node) and
inprocess.py (this process, no Ray). measured_store.py and metrics.py: what actors report.
"""
