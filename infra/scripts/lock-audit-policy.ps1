# azd postprovision hook (Windows): see lock-audit-policy.sh.
$ErrorActionPreference = 'Stop'
function Setting($name) {
  $v = [Environment]::GetEnvironmentVariable($name)
  if (-not $v) { $v = (azd env get-value $name 2>$null) }
  return $v
}
if ((Setting 'AUDIT_POLICY_LOCKED') -ne 'true') { exit 0 }
$group = Setting 'AZURE_RESOURCE_GROUP'
$account = Setting 'AUDIT_STORAGE_ACCOUNT_NAME'
$container = Setting 'AUDIT_CONTAINER'; if (-not $container) { $container = 'er-transit-audit' }
$days = Setting 'AUDIT_RETENTION_DAYS'; if (-not $days) { $days = '365' }
if (-not $group -or -not $account) {
  Write-Error 'lock-audit-policy: AZURE_RESOURCE_GROUP / AUDIT_STORAGE_ACCOUNT_NAME unknown; run azd provision first'
  exit 1
}
$where = @('-g', $group, '--account-name', $account, '-c', $container)
$policy = (az storage container immutability-policy show @where -o json 2>$null) | ConvertFrom-Json
if ($policy -and $policy.state -eq 'Locked') {
  if ([int]$policy.immutabilityPeriodSinceCreationInDays -lt [int]$days) {
    az storage container immutability-policy extend @where --period $days --allow-protected-append-writes true --if-match $policy.etag -o none
  }
  exit 0
}
az storage container immutability-policy create @where --period $days --allow-protected-append-writes true -o none
$etag = az storage container immutability-policy show @where --query etag -o tsv
az storage container immutability-policy lock @where --if-match $etag -o none
