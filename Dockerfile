# The worker as a container, for docker-compose.yml (or your own orchestration).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker/ worker/
RUN pip install --no-cache-dir .
COPY rules/ rules/
COPY templates/ templates/
USER nobody
CMD ["feedback-worker", "run"]
