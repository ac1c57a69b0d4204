# nginx in front of the two SSE gateways (docker-compose.yml service `nginx`).
#   docker build -f docker/nginx.Dockerfile -t payments-push/nginx:local docker
# Debian's own nginx package on debian:bookworm-slim; runs as www-data,
# listens on 8080 (HTTP/1.1) and 8443 (TLS, HTTP/2), logs to stdout/stderr.
# Config: docker/nginx.conf. The entrypoint (docker/nginx-entrypoint.sh,
# with openssl) makes a self-signed certificate for localhost in
# /etc/nginx/tls when none is there.
FROM debian:bookworm-slim
# /etc/nginx/tls is www-data's, and only its: a named volume mounted there
# starts as a copy of it (owner and mode too), so the entrypoint can write
# the certificate into it.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx openssl \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* /etc/nginx/conf.d/* \
 && mkdir -p /tmp/nginx /etc/nginx/tls \
 && chown -R www-data:www-data /tmp/nginx /var/lib/nginx /var/log/nginx \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log \
 && chown www-data:www-data /etc/nginx/tls \
 && chmod 0700 /etc/nginx/tls
COPY nginx.conf /etc/nginx/nginx.conf
# executable in git; chmod again as the classic builder has no COPY --chmod
COPY nginx-entrypoint.sh /usr/local/bin/nginx-entrypoint.sh
RUN chmod 0755 /usr/local/bin/nginx-entrypoint.sh
EXPOSE 8080 8443
USER www-data
STOPSIGNAL SIGQUIT
# No curl in the image: bash's /dev/tcp asks nginx's own health location.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /nginx-healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/nginx-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
