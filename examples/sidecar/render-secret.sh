#!/usr/bin/env bash
# Renders a folder of gateway manifests into the Secret a sidecar proxy reads with --config-dir:
#   config.json       the GatewayConfig printed by `bedrock-gateway-operator render -f DIR`
#   credentials.json  no account keys and no API keys: the sidecar's account uses the pod's
#                     IAM role and its caller authenticates with its service-account token
#
#   examples/sidecar/render-secret.sh examples/sidecar/manifests apps chatbot-gateway > secret.yaml
#   kubectl apply -f secret.yaml
#
# Needs bedrock-gateway-operator on PATH (or OPERATOR=path), python3 with PyYAML, and kubectl.
set -euo pipefail
dir="${1:?usage: render-secret.sh MANIFEST_DIR NAMESPACE SECRET_NAME}"
namespace="${2:?namespace}"
name="${3:?secret name}"
operator="${OPERATOR:-bedrock-gateway-operator}"
kubectl="${KUBECTL:-kubectl}"
python="${PYTHON:-python3}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# render fails (and prints every problem) on an invalid folder: the Secret is never half-made.
"$operator" render -f "$dir" >"$work/config.yaml"
"$python" -c 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout, indent=2, sort_keys=True)' \
  <"$work/config.yaml" >"$work/config.json"
printf '{"accounts": {}, "apiKeys": {}}\n' >"$work/credentials.json"
"$kubectl" create secret generic "$name" --namespace "$namespace" \
  --from-file=config.json="$work/config.json" --from-file=credentials.json="$work/credentials.json" \
  --dry-run=client -o yaml
