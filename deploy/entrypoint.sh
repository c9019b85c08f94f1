#!/bin/sh
# Entrypoint of the coin image (deploy/Dockerfile): every role, and every run container the daemon
# starts, passes through here.
#
# Secrets arrive as files named by <NAME>_FILE (compose secrets, Kubernetes secret volumes). The
# platform's own settings read those files themselves (coin_platform/settings.py), but a few are read
# from the environment by Dagster's instance, not by our code: the PostgreSQL password
# (deploy/dagster.yaml `env:`) and the S3 key pair boto3 signs compute-log uploads with. Those alone
# are exported here; an empty file leaves the variable unset, as the settings do.
set -eu

for name in DAGSTER_POSTGRES_PASSWORD AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
  eval "path=\${${name}_FILE:-}"
  [ -n "$path" ] || continue
  if [ ! -r "$path" ]; then
    echo "entrypoint: ${name}_FILE names $path, which cannot be read" >&2
    exit 1
  fi
  value=$(cat "$path")
  if [ -n "$value" ]; then
    export "$name=$value"
  fi
  unset "${name}_FILE"
done

exec "$@"
