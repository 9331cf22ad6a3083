#!/usr/bin/env bash
# checkov's Bicep checks, offline, with a pinned checkov in its own venv (.venv-checkov: checkov pins an
# older pycep-parser than the project's). Fails on any parse error, or any failed check not listed with a
# reason in infra/checks/checkov-skips.json. Called by .ci/run as: bash infra/checks/checkov.sh
set -euo pipefail

CHECKOV_VERSION="3.3.30"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv-checkov"

if [ ! -x "$venv/bin/checkov" ] || [ "$("$venv/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
  python="$(command -v python3.11 || command -v python3)"
  echo "checkov: installing checkov==$CHECKOV_VERSION into $venv" >&2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

report="$(mktemp)"
trap 'rm -f "$report"' EXIT

cd "$root"
# checkov exits 1 when a check fails; the gate below decides. A crash leaves no JSON and the gate fails.
BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" --framework bicep --skip-download -d infra -o json >"$report" || true
"$venv/bin/python" "$root/infra/checks/checkov_gate.py" "$report" "$root/infra/checks/checkov-skips.json"
