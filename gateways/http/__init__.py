"""The aiohttp API: app.py builds it from the service; one module per concern.

v1.py and shapes.py (/v1 JSON), branches.py (the /v1 branch routes), answer.py and sse.py (a
turn answered as JSON or as Server-Sent Events), legacy.py (the original
POST /chat), probes.py (/healthz, /readyz), page.py and web/ (the web page), middleware.py (auth,
errors), errors.py (the error tree as HTTP statuses), guard.py (Origin and Host), listener.py (the
connection cap, timeouts), keys.py, responses.py. The WhatsApp webhook lives in gateways/whatsapp/.
"""
