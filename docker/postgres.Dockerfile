# Local stand-in for the official postgres:15-bookworm image, for machines
# where no registry can be reached (.ci/base-images.sh builds it only when
# that tag is missing, so a pulled official image is never replaced).
#   docker build -f docker/postgres.Dockerfile -t postgres:15-bookworm docker
# It has the official image's interface, as far as docker-compose.replicated.yml
# uses it: POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (one is required),
# POSTGRES_USER (default postgres),
# POSTGRES_DB (default $POSTGRES_USER), data in PGDATA=/var/lib/postgresql/data
# (a volume), port 5432, password (scram-sha-256) logins from the network,
# `pg_isready` for health checks, SIGINT to stop (fast shutdown).
FROM debian:bookworm-slim
# What .ci/base-images.sh checks to tell this stand-in from the official
# image, and an older stand-in (without POSTGRES_PASSWORD_FILE) from this one.
LABEL org.payments-push.postgres-standin="2"
# No cluster from the package (the entrypoint makes one in PGDATA), and no
# service started during the build.
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf \
 && printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -f /usr/sbin/policy-rc.d \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
EXPOSE 5432
USER postgres
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
