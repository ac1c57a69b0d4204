# Local stand-in for the official postgres:15-bookworm image, for machines
# where no registry can be reached (.ci/base-images.sh builds it only when
# that tag is missing, so a pulled official image is never replaced).
#   docker build -f docker/postgres.Dockerfile -t postgres:15-bookworm docker
# It has the official image's interface, as far as docker-compose.replicated.yml
# uses it: POSTGRES_PASSWORD (required), POSTGRES_USER (default postgres),
# POSTGRES_DB (default $POSTGRES_USER), data in PGDATA=/var/lib/postgresql/data
# (a volume), port 5432, password (scram-sha-256) logins from the network,
# `pg_isready` for health checks, SIGINT to stop (fast shutdown).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
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
