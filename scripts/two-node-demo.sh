#!/usr/bin/env bash
# Two nodes on one machine, from nothing to a catalog filtered by a credential:
#   a pack maker (also the dataspace's credential issuer) publishes battery passports for recyclers,
#   a recycler gets a role credential and sees them in the pack maker's catalog.
# Usage: scripts/two-node-demo.sh [WORKDIR]   (ports: PACKMAKER_PORT/PACKMAKER_ADMIN, RECYCLER_PORT/RECYCLER_ADMIN)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
connector="${DEMO_CONNECTOR:-$here/.venv/bin/connector}"
unset DEMO_CONNECTOR
work="${1:-$(mktemp -d)}"
mkdir -p "$work" && cd "$work"
P=${PACKMAKER_PORT:-8282}; PA=${PACKMAKER_ADMIN:-8181}; R=${RECYCLER_PORT:-9292}; RA=${RECYCLER_ADMIN:-9191}

# Local development: did:web over plain HTTP on loopback, peers on loopback.
export CONNECTOR_ALLOW_LOCAL_PEERS=true CONNECTOR_LOG_FORMAT=text CONNECTOR_PROTOCOL_HOST=127.0.0.1
packmaker() { env CONNECTOR_DATA_DIR=./packmaker CONNECTOR_PROTOCOL_PORT="$P" CONNECTOR_MANAGEMENT_PORT="$PA" "$@"; }
recycler() { env CONNECTOR_DATA_DIR=./recycler CONNECTOR_PROTOCOL_PORT="$R" CONNECTOR_MANAGEMENT_PORT="$RA" "$@"; }

# 1. The pack maker becomes the issuer; both nodes trust it.
issuer_did=$(packmaker "$connector" issuer init | sed -n 's/^issuer DID: //p')
export CONNECTOR_TRUSTED_ISSUERS="$issuer_did"

# 2. Start both nodes.
# `env` execs the node, so $! is the node itself and the trap stops it.
env CONNECTOR_DATA_DIR=./packmaker CONNECTOR_PROTOCOL_PORT="$P" CONNECTOR_MANAGEMENT_PORT="$PA" "$connector" serve 2> packmaker.log &
pid_p=$!
env CONNECTOR_DATA_DIR=./recycler CONNECTOR_PROTOCOL_PORT="$R" CONNECTOR_MANAGEMENT_PORT="$RA" "$connector" serve 2> recycler.log &
pid_r=$!
trap 'kill $pid_p $pid_r 2>/dev/null; wait $pid_p $pid_r 2>/dev/null || true' EXIT
for url in "http://127.0.0.1:$PA/ready" "http://127.0.0.1:$RA/ready"; do
  for _ in $(seq 1 100); do curl -sf "$url" > /dev/null && break; sleep 0.1; done
done

# 3. The issuer gives the recycler a role credential; the recycler holds it.
recycler_did=$(curl -sf "http://127.0.0.1:$RA/management/v1/identity" | python3 -c 'import json,sys; print(json.load(sys.stdin)["did"])')
credential=$(packmaker "$connector" issuer issue --subject "$recycler_did" --type role --role recycler)
curl -sf -X POST "http://127.0.0.1:$RA/management/v1/credentials" -H 'Content-Type: application/json' \
  -d "{\"credential\": \"$credential\"}" > /dev/null

# 4. The pack maker publishes passports of model X for recyclers only.
edc='"@context": {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"}'
curl -sf -X POST "http://127.0.0.1:$PA/management/v3/assets" -H 'Content-Type: application/json' -d "{$edc,
  \"@id\": \"passports-model-x\", \"properties\": {\"name\": \"Battery passports, model X\"},
  \"dataAddress\": {\"type\": \"BatteryPassport\", \"batteryModel\": \"X\", \"accessLevel\": \"legitimate_interest\"}}" > /dev/null
curl -sf -X POST "http://127.0.0.1:$PA/management/v3/policydefinitions" -H 'Content-Type: application/json' -d "{$edc,
  \"@id\": \"recyclers-only\", \"policy\": {\"@context\": \"http://www.w3.org/ns/odrl.jsonld\", \"@type\": \"Set\",
  \"permission\": [{\"action\": \"use\", \"constraint\": [{\"leftOperand\": \"https://w3id.org/battery-passport-connector/ns/role\",
  \"operator\": \"isA\", \"rightOperand\": \"recycler\"}]}]}}" > /dev/null
curl -sf -X POST "http://127.0.0.1:$PA/management/v3/contractdefinitions" -H 'Content-Type: application/json' -d "{$edc,
  \"@id\": \"offer-model-x\", \"accessPolicyId\": \"recyclers-only\", \"contractPolicyId\": \"recyclers-only\",
  \"assetsSelector\": [{\"operandLeft\": \"https://w3id.org/edc/v0.0.1/ns/id\", \"operator\": \"=\", \"operandRight\": \"passports-model-x\"}]}" > /dev/null

# 5. The recycler asks for the pack maker's catalog (the DID is found from its version document).
curl -sf -X POST "http://127.0.0.1:$RA/management/v3/catalog/request" -H 'Content-Type: application/json' -d "{$edc,
  \"counterPartyAddress\": \"http://localhost:$P/api/dsp/2025-1\", \"protocol\": \"dataspace-protocol-http:2025-1\"}"
echo
