#!/usr/bin/env bash
# checkov's Bicep checks, offline, with a pinned checkov in its own venv (.venv-checkov: checkov pins an
# older pycep-parser than the project's). Fails on any parse error, or any failed check not listed with a
# reason in infra/checks/checkov-skips.json. Called by .ci/run as: bash infra/checks/checkov.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv-checkov"
# Installed exactly from the hash-pinned lock (requirements-checkov.in -> `make lock`): no resolution, nothing
# unlocked, every file checked against its sha256. The venv is rebuilt whenever the lock changes.
lock="$root/requirements-checkov.txt"
lock_sha="$(sha256sum "$lock" | cut -d' ' -f1)"

if [ ! -x "$venv/bin/checkov" ] || [ "$(cat "$venv/.lock-sha256" 2>/dev/null)" != "$lock_sha" ]; then
  python="$(command -v python3.11 || command -v python3)"
  echo "checkov: installing $(grep -o '^checkov==[^ ]*' "$lock") from $(basename "$lock") into $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$lock"
  echo "$lock_sha" >"$venv/.lock-sha256"
fi

report="$(mktemp)"
trap 'rm -f "$report"' EXIT

cd "$root"
# checkov exits 1 when a check fails; the gate below decides. A crash leaves no JSON and the gate fails.
BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" --framework bicep --skip-download -d infra -o json >"$report" || true
"$venv/bin/python" "$root/infra/checks/checkov_gate.py" "$report" "$root/infra/checks/checkov-skips.json"
