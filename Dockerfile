# chatservice: one image for the Ray head (gateways) and the Ray worker nodes.
# Build: docker build -t chatservice .   Run: see docker-compose.yml and the README.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY actors ./actors
COPY gateways ./gateways
COPY store ./store
# The tiktoken encodings and the web page are package data: the image counts tokens and serves the
# page offline.
RUN python -m venv /opt/chatservice \
    && /opt/chatservice/bin/pip install --no-cache-dir . \
    && /opt/chatservice/bin/python -c "from gateways.llm.tokenizer import tokenizer_for; tokenizer_for('gpt-4o-mini').count_text('ok')" \
    && /opt/chatservice/bin/python -c "from gateways.http.page import ASSETS, asset; [asset(n) for n in ASSETS]"

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin chat
COPY --from=build /opt/chatservice /opt/chatservice
ENV PATH=/opt/chatservice/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    HOST=0.0.0.0
USER chat
WORKDIR /home/chat
# HTTP, gRPC, Ray dashboard, Ray GCS (workers join here), Ray metrics export.
EXPOSE 8080 50051 8265 6379 8090
CMD ["chatservice", "serve"]
