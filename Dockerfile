# The node as a container image: `docker build -t bpc . && docker run -p 8282:8282 bpc`
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 connector
WORKDIR /app
COPY pyproject.toml README.md ./
COPY policies ./policies
COPY catalog ./catalog
COPY connector ./connector
RUN pip install --no-cache-dir . && mkdir /data && chown connector /data

USER connector
ENV CONNECTOR_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8282 8181
STOPSIGNAL SIGTERM
CMD ["connector", "serve"]
