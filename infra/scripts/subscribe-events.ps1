# azd postdeploy hook (Windows): see subscribe-events.sh.
$ErrorActionPreference = 'Stop'
$current = (azd env get-value SUBSCRIBE_EVENTS 2>$null)
if ($current -eq 'true') { exit 0 }
Write-Host 'Subscribing Event Grid to the deployed function (second provision)...'
azd env set SUBSCRIBE_EVENTS true
azd provision --no-prompt
if ($LASTEXITCODE -ne 0) {
  azd env set SUBSCRIBE_EVENTS false
  Write-Error 'Event Grid subscription failed; wait a minute for the function host, then: azd env set SUBSCRIBE_EVENTS true; azd provision'
  exit 1
}
