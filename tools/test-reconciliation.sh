#!/usr/bin/env bash
# test-reconciliation.sh: the old service's test script, against this API.
# Usage: tools/test-reconciliation.sh [BASE_URL]   (API_TOKEN from the environment)
set -euo pipefail
base=${1:-http://127.0.0.1:${PORT:-3000}}
auth=()
[ -n "${API_TOKEN:-}" ] && auth=(-H "Authorization: Bearer $API_TOKEN")
pretty() { if command -v jq >/dev/null; then jq .; else cat; echo; fi; }

echo "== service"
curl -sf "$base/" | pretty
echo "== health"
curl -s "$base/api/health" | pretty
echo "== status"
curl -sf "$base/api/reconciliation/status" | pretty
echo "== check now (waits for the run)"
curl -s -X POST "${auth[@]}" "$base/api/reconciliation/check" | pretty
echo "== status after the check"
curl -sf "$base/api/reconciliation/status" | pretty
echo "== last runs"
curl -sf "$base/api/reconciliation/runs?limit=3" | pretty
