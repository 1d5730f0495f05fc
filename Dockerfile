# The worker as a container, for docker-compose.yml, deploy/kubernetes/ (or your own orchestration).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker/ worker/
RUN pip install --no-cache-dir .
COPY rules/ rules/
COPY templates/ templates/
USER nobody
# /metrics (Prometheus), /healthz and /readyz: HTTP_PORT, 9464 unless set (0: none of them).
EXPOSE 9464
# Healthy while the loop polls Kafka (/healthz). With HTTP_PORT=0 there is nothing to ask: always healthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; p = os.environ.get('HTTP_PORT') or '9464'; p == '0' or u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"]
CMD ["feedback-worker", "run"]
