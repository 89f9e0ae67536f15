#!/usr/bin/env bash
# Lint the GitHub Actions workflows offline; exit non-zero on any finding.
#   zizmor            security audit (default persona; --offline skips the
#                     audits that query GitHub, e.g. impostor-commit)
#   check-jsonschema  the workflow schema
# Usage: tools/dev/lint_workflows.sh [WORKFLOW_DIR]   (default: .github/workflows)
# LINT_VENV: virtualenv holding both tools (default: .venv-lint in the repo root).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
lint_venv="${LINT_VENV:-$root/.venv-lint}"
dir="${1:-$root/.github/workflows}"

for tool in zizmor check-jsonschema; do
  if [[ ! -x "$lint_venv/bin/$tool" ]]; then
    echo "lint_workflows: $lint_venv/bin/$tool not found (pip install -r requirements-lint.txt into $lint_venv)" >&2
    exit 2
  fi
done

shopt -s nullglob
files=("$dir"/*.yml "$dir"/*.yaml)
if (( ${#files[@]} == 0 )); then
  echo "lint_workflows: no workflow files in $dir" >&2
  exit 2
fi

status=0
# --strict-collection: a file zizmor cannot parse is an error, not a skipped warning.
"$lint_venv/bin/zizmor" --offline --strict-collection --no-progress "$dir" || status=1
"$lint_venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${files[@]}" || status=1
exit "$status"
