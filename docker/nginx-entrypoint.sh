#!/bin/sh
# Entry point of the nginx image (docker/nginx.Dockerfile): makes sure the
# TLS listener (8443, docker/nginx.conf) has a certificate, then runs the
# command (nginx). nginx refuses to start on a missing certificate file,
# and a quick start should not need one made by hand: so when tls.crt or
# tls.key in the directory is missing or empty, a self-signed certificate
# for localhost is made there. Its volume (`edge-tls` in the compose files)
# keeps it across re-creations, so a browser that was told to trust it
# keeps trusting it. Files that are there are used untouched: an operator's
# own certificate, mounted with EDGE_TLS_DIR, is never replaced.
#
# NGINX_TLS_DIR moves the directory, for running this outside the image.
set -eu

dir=${NGINX_TLS_DIR:-/etc/nginx/tls}
crt=$dir/tls.crt
key=$dir/tls.key

if [ ! -s "$crt" ] || [ ! -s "$key" ]; then
  # Written under other names and renamed once complete: a container
  # stopped halfway leaves no half certificate that would count as the
  # operator's on the next start.
  new_crt=$dir/.tls.crt.new
  new_key=$dir/.tls.key.new
  conf=$(mktemp)
  err=$(mktemp)
  trap 'rm -f "$conf" "$err" "$new_crt" "$new_key"' EXIT
  # A configuration of its own rather than the system's openssl.cnf, whose
  # defaults (CA:TRUE for `req -x509`) Firefox refuses in a server
  # certificate. SAN, not CN, is what browsers match; 825 days is the
  # longest validity Apple's platforms accept for a server certificate.
  cat >"$conf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = leaf
[dn]
CN = localhost
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
EOF
  # The key is readable by this user (www-data) alone.
  umask_before=$(umask)
  umask 077
  if ! openssl req -x509 -config "$conf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
      -nodes -days 825 -keyout "$new_key" -out "$new_crt" 2>"$err"; then
    echo "nginx-entrypoint: cannot make a certificate in $dir (is it writable by $(id -un)?): $(tr '\n' ' ' <"$err")" >&2
    exit 1
  fi
  umask "$umask_before"
  chmod 0644 "$new_crt"
  mv -f "$new_key" "$key"
  mv -f "$new_crt" "$crt"
  # exec below skips the EXIT trap
  rm -f "$conf" "$err"
  trap - EXIT
  fingerprint=$(openssl x509 -in "$crt" -noout -fingerprint -sha256 | sed 's/^.*=//')
  echo "nginx-entrypoint: no certificate in $dir, made a self-signed one for localhost (SHA-256 $fingerprint, valid 825 days); trust it (docker compose cp nginx:$crt ./localhost.crt) or replace it with your own tls.crt and tls.key (EDGE_TLS_DIR, see README.md)" >&2
fi

exec "$@"
