"""The gateway process: the HTTP and gRPC APIs, the WhatsApp bot, the service layer they share.

cli.py       the `chatservice` command (serve, migrate, chat)
serve.py     the served process: wiring (which Conversations, which LLM) and its run loop
serving/     serve's start-up: ports, Ray, the connection cap, readiness
settings/    every setting declared once (table.py), read into one Settings (values.py)
logs.py      log lines with the turn's ids; metrics.py turn metrics; auth.py the token check
service/     the service layer: turns and chats, ownership, leases, ids, paging, the turn report
llm/         the LLM side: the port and its OpenAI-compatible client, the offline responder,
             token counting, context windows, corrections, overflow answers
http/        the aiohttp API (/v1, SSE, legacy POST /chat, probes, the web page), its errors
rpc/         the grpc.aio API (chatservice.v1, the legacy ChatStream, health), its errors,
             the terminal client (rpc, not grpc: the library keeps its name)
whatsapp/    the WhatsApp bot over Twilio: rules, the webhook, media, bursts, delivery
"""
