# eachsense-bot: slim image, non-root user, health check on the bot's HTTP server.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////data/eachsense-bot.db HTTP_PORT=8080

WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY storage ./storage
COPY simulator ./simulator
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 bot \
    && mkdir -p /data && chown bot:bot /data

USER bot
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT','8080'), timeout=4)" || exit 1

# `docker stop` sends SIGTERM: the bot drains (SHUTDOWN_GRACE, default 8 s, under Docker's 10 s)
STOPSIGNAL SIGTERM
ENTRYPOINT ["eachsense-bot"]
CMD ["run"]
