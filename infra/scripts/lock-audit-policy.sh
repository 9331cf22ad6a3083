#!/bin/sh
# azd postprovision hook: with AUDIT_POLICY_LOCKED=true, lock the audit container's immutability policy at
# deploy time (creating it first when the template left it out). ARM has no declarative lock (it is a POST
# .../immutabilityPolicies/default/lock action), so it runs here, with the deploying user's rights, never the
# function's. Irreversible: a locked policy can only be extended, and the account cannot be deleted while a
# blob is still protected. Idempotent: an already locked policy is only extended if the period grew.
set -eu

setting() {
  v="$(printenv "$1" 2>/dev/null || true)"
  if [ -z "$v" ]; then v="$(azd env get-value "$1" 2>/dev/null || true)"; fi
  printf '%s' "$v"
}

if [ "$(setting AUDIT_POLICY_LOCKED)" != "true" ]; then
  exit 0
fi
group="$(setting AZURE_RESOURCE_GROUP)"
account="$(setting AUDIT_STORAGE_ACCOUNT_NAME)"
container="$(setting AUDIT_CONTAINER)"
days="$(setting AUDIT_RETENTION_DAYS)"
container="${container:-er-transit-audit}"
days="${days:-365}"
if [ -z "$group" ] || [ -z "$account" ]; then
  echo "lock-audit-policy: AZURE_RESOURCE_GROUP / AUDIT_STORAGE_ACCOUNT_NAME unknown; run azd provision first" >&2
  exit 1
fi
where="-g $group --account-name $account -c $container"

# shellcheck disable=SC2086  # $where is word-split on purpose (names have no spaces)
state="$(az storage container immutability-policy show $where --query state -o tsv 2>/dev/null || true)"
# shellcheck disable=SC2086
period="$(az storage container immutability-policy show $where --query immutabilityPeriodSinceCreationInDays -o tsv 2>/dev/null || true)"
etag() {
  # shellcheck disable=SC2086
  az storage container immutability-policy show $where --query etag -o tsv
}

if [ "$state" = "Locked" ]; then
  if [ "${period:-0}" -lt "$days" ]; then
    echo "lock-audit-policy: extending the locked policy of $account/$container to $days days"
    # shellcheck disable=SC2086
    az storage container immutability-policy extend $where --period "$days" --allow-protected-append-writes true \
      --if-match "$(etag)" -o none
  else
    echo "lock-audit-policy: $account/$container is already locked ($period days)"
  fi
  exit 0
fi

echo "lock-audit-policy: locking the audit policy of $account/$container ($days days, protected appends)"
# shellcheck disable=SC2086
az storage container immutability-policy create $where --period "$days" --allow-protected-append-writes true -o none
# shellcheck disable=SC2086
az storage container immutability-policy lock $where --if-match "$(etag)" -o none
