# Prometheus for the optional `observability` compose profile
# (docker-compose.yml service `prometheus`).
#   docker build -f docker/prometheus.Dockerfile -t payments-push/prometheus:local docker
# Debian's own prometheus package (2.42 in bookworm) on debian:bookworm-slim,
# like nginx.Dockerfile, so nothing is pulled beyond the local base image
# (.ci/base-images.sh) and Debian packages. Runs as the package's `prometheus`
# user, listens on 9090, keeps its TSDB in /var/lib/prometheus/metrics2 (a
# volume). Configs: prometheus.yml (default), prometheus.replicated.yml (the
# replicated stack passes --config.file for it).
FROM debian:bookworm-slim
# No service started during the build (the package ships an init script).
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -f /usr/sbin/policy-rc.d \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/prometheus/metrics2 \
 && chown -R prometheus:prometheus /var/lib/prometheus
COPY prometheus.yml prometheus.replicated.yml /etc/prometheus/
RUN promtool check config /etc/prometheus/prometheus.yml /etc/prometheus/prometheus.replicated.yml
VOLUME /var/lib/prometheus/metrics2
EXPOSE 9090
USER prometheus
WORKDIR /var/lib/prometheus
# No curl in the image: bash's /dev/tcp asks Prometheus's own health endpoint.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /-/healthy HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
# Debian's build defaults are the ones wanted here (listen 0.0.0.0:9090,
# TSDB /var/lib/prometheus/metrics2, consoles in /etc/prometheus, 15 d
# retention), so the arguments are only the config file: the replicated
# stack's `command:` replaces them whole.
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml"]
