# nginx in front of the two SSE gateways (docker-compose.yml service `nginx`).
#   docker build -f docker/nginx.Dockerfile -t payments-push/nginx:local docker
# Debian's own nginx package on debian:bookworm-slim; runs as www-data,
# listens on 8080, logs to stdout/stderr. Config: docker/nginx.conf.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* /etc/nginx/conf.d/* \
 && mkdir -p /tmp/nginx \
 && chown -R www-data:www-data /tmp/nginx /var/lib/nginx /var/log/nginx \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx.conf /etc/nginx/nginx.conf
EXPOSE 8080
USER www-data
STOPSIGNAL SIGQUIT
# No curl in the image: bash's /dev/tcp asks nginx's own health location.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /nginx-healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
CMD ["nginx", "-g", "daemon off;"]
