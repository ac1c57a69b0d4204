#!/usr/bin/env bash
# Makes the credentials of a stack that runs without development mode, one
# file each, in DIR: what docker-compose.replicated.yml mounts as compose
# secrets (SECRETS_DIR=DIR), and what any other deployment can read through
# the services' *_FILE variables (README, "Running in production").
#
#   scripts/make-secrets.sh DIR [--force]
#
#   provider_secret        PROVIDER_SECRET of payment-core and mock-provider
#                          (random, 32 bytes in hex)
#   admin_token            ADMIN_TOKEN of the gateways (random)
#   gateway_api_key        PAYMENT_CORE_API_KEY of the gateways (roles
#                          merchant+gateway, merchant MERCHANT)
#   provider_api_key       PAYMENT_CORE_API_KEY of mock-provider (role reader)
#   merchant_api_key       a merchant key for a shop backend, grpcurl or
#                          loadgen (role merchant, merchant MERCHANT)
#   payment_core_api_keys  PAYMENT_CORE_API_KEYS_FILE of the cores: the three
#                          keys' entries, hashes only
#   postgres_password      POSTGRES_PASSWORD_FILE of PostgreSQL (random)
#   database_url           DATABASE_URL_FILE of the cores:
#                          postgres://payments:<password>@postgres:5432/payments
#
# Keys are made as `payment-core api-key` makes them (`pcore_` and 32
# random bytes in hex; the entry holds its SHA-256), with openssl and
# sha256sum, so nothing needs building first. Files already in DIR are kept,
# so that a stack's database keeps the password it was made with; --force
# makes every one anew. DIR is made private (0700); the files in it are 0644,
# because compose mounts each one into its containers as it is, and the
# services run there as a user of their own.
#
# Environment: MERCHANT (larkspur), the merchant the gateway's and the
# merchant key act for.
set -euo pipefail

usage() { sed -n '2,9p' "$0" >&2; exit 64; }
[[ $# -ge 1 && $# -le 2 ]] || usage
dir=$1
force=0
if [[ $# -eq 2 ]]; then [[ $2 == --force ]] || usage; force=1; fi
merchant=${MERCHANT:-larkspur}
command -v openssl >/dev/null || { echo "make-secrets: needs openssl" >&2; exit 1; }

mkdir -p "$dir"
chmod 0700 "$dir"

# write NAME VALUE: DIR/NAME holds VALUE and a newline, replaced at once.
write() {
  local file=$dir/$1
  (umask 077 && printf '%s\n' "$2" >"$file.new")
  chmod 0644 "$file.new"
  mv -f "$file.new" "$file"
}
# put NAME VALUE: write, unless DIR/NAME exists (and no --force).
put() {
  if [[ $force == 0 && -s $dir/$1 ]]; then return; fi
  write "$1" "$2"
}
random() { openssl rand -hex 32; }
key() { echo "pcore_$(random)"; }
# entry NAME MERCHANT ROLES KEYFILE: the PAYMENT_CORE_API_KEYS entry of the key in KEYFILE.
entry() {
  local hash
  hash=$(tr -d '\n' <"$dir/$4" | sha256sum)
  echo "$1:$2:$3:${hash%% *}"
}

put provider_secret "$(random)"
put admin_token "$(random)"
put gateway_api_key "$(key)"
put provider_api_key "$(key)"
put merchant_api_key "$(key)"
put postgres_password "$(random)"
password=$(tr -d '\n' <"$dir/postgres_password")
put database_url "postgres://payments:$password@postgres:5432/payments"
# The entries always follow the keys, also the ones kept.
write payment_core_api_keys "$(
  printf '# made by scripts/make-secrets.sh: name:merchant:roles:sha256-of-the-key\n'
  entry gateway "$merchant" merchant+gateway gateway_api_key
  entry provider mockpay reader provider_api_key
  entry shop "$merchant" merchant merchant_api_key
)"
echo "make-secrets: credentials in $dir" >&2
