#!/bin/sh
# azd postdeploy hook: once the code (and so the on_resource_event function) exists, provision again with
# the Event Grid subscriptions. Runs the extra provision only the first time (SUBSCRIBE_EVENTS unset/false).
set -eu
current="$(azd env get-value SUBSCRIBE_EVENTS 2>/dev/null || true)"
if [ "$current" = "true" ]; then
  exit 0
fi
echo "Subscribing Event Grid to the deployed function (second provision)..."
azd env set SUBSCRIBE_EVENTS true
if ! azd provision --no-prompt; then
  # Leave the flag unset so the next `azd up` tries again instead of skipping the subscriptions.
  azd env set SUBSCRIBE_EVENTS false
  echo "Event Grid subscription failed; if it says the function endpoint was not found, wait a minute" >&2
  echo "for the function host to index the app and run: azd env set SUBSCRIBE_EVENTS true && azd provision" >&2
  exit 1
fi
