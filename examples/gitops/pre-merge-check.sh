#!/usr/bin/env bash
# Pre-merge check for a Git repository of gateway resources: every folder must render.
# `bedrock-gateway-operator render -f DIR` runs the operator's own validation offline (no
# cluster, no AWS): unknown accounts, duplicate served names, bad model ids, missing Secret
# keys, policies naming nothing... It prints the config on success and every problem, with
# the fix, on failure. Secret values are never printed.
#
#   examples/gitops/pre-merge-check.sh gateway/ teams/ml/
#
# In CI, use the operator image (entrypoint bedrock-gateway-operator):
#   docker run --rm -v "$PWD:/src:ro" -w /src <registry>/bedrock-gateway-operator:0.1.0 render -f gateway/
set -euo pipefail
operator="${OPERATOR:-bedrock-gateway-operator}"
failed=0
for dir in "${@:-.}"; do
  echo "== render -f $dir"
  if ! "$operator" render -f "$dir" >/dev/null; then
    failed=1
  fi
done
exit "$failed"
