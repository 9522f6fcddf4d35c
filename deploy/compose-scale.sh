#!/usr/bin/env bash
# Scales replica services of the compose stack, then makes the gateway see the change.
#
#   deploy/compose-scale.sh session=5 token=5   scale, wait until the new replicas are healthy,
#                                               reload the gateway
#   deploy/compose-scale.sh                     only reload the gateway (after a replica was
#                                               recreated elsewhere and has a new address)
#
# Why: nginx resolves upstream names when it starts or reloads, and never in between (1.22, the
# version tested here, has no `resolve` on upstream servers). Docker's DNS answers "session"
# with every replica's address, so a reload after scaling is all the gateway needs: it is
# graceful (old workers finish their requests) and keeps upstream keepalive for the benchmarks.
# Between two reloads, a replica that vanished is skipped by passive health checks (max_fails)
# and idempotent requests are retried on another one.
#
# Uses `docker compose` or `docker-compose`, whichever exists; COMPOSE_PROJECT_NAME and
# COMPOSE_FILE are honoured as usual.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if docker compose version >/dev/null 2>&1; then
    compose() { docker compose "$@"; }
else
    compose() { docker-compose "$@"; }
fi

scale=() services=()
for pair in "$@"; do
    if [[ ! $pair =~ ^(session|token|issuer)=[0-9]+$ ]]; then
        echo "compose-scale: expected ROLE=N with ROLE session, token or issuer; got '$pair'" >&2
        exit 2
    fi
    scale+=(--scale "$pair")
    services+=("${pair%%=*}")
done

if ((${#services[@]})); then
    compose up -d --no-recreate "${scale[@]}" "${services[@]}"
    deadline=$((SECONDS + ${AUTHSCALE_SCALE_TIMEOUT:-120}))
    for service in "${services[@]}"; do
        for id in $(compose ps -q "$service"); do
            until [[ $(docker inspect -f '{{.State.Health.Status}}' "$id") == healthy ]]; do
                if ((SECONDS > deadline)); then
                    echo "compose-scale: $service container ${id:0:12} is not healthy yet" >&2
                    exit 1
                fi
                sleep 1
            done
        done
        echo "compose-scale: $service has $(compose ps -q "$service" | wc -l) healthy replicas"
    done
fi
compose exec -T gateway nginx -s reload
echo "compose-scale: gateway reloaded"
