// ER-transit auditor: the whole deployment. `azd up`, or `az deployment sub create` (infra/README.md (Deploy)).
// Creates, in one resource group of this subscription: the Flex Consumption function app and its
// identity, host storage (package, leases, dead letters) and a separate evidence account (state, WORM audit
// log, recheck queue), Key Vault with the
// webhook URLs, Log Analytics + Application Insights + alerts. And in each watched subscription: Reader for
// the function identity and an Event Grid system topic + filtered event subscription to the function.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Environment name; used to name the resource group and derive unique resource names.')
param environmentName string

@minLength(1)
@description('Azure region of the auditor\'s resources (one that offers Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group of the auditor. Empty: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Comma-separated ids of the subscriptions to watch (no spaces needed, no trailing comma). Empty: this subscription.')
param watchedSubscriptions string = ''

@description('Resource group created in each watched subscription for its Event Grid system topic. Empty: rg-<environmentName>-events.')
param eventsResourceGroupName string = ''

@description('Create the Event Grid event subscriptions. Event Grid checks that on_resource_event exists, so the first deployment (before the code is published) runs with false; azd\'s postdeploy hook re-provisions with true.')
param subscribeEvents bool = false

@secure()
@description('Teams Workflows webhook URL, stored in Key Vault. Empty string: Teams not configured.')
param teamsWebhookUrl string

@secure()
@description('Slack incoming-webhook URL, stored in Key Vault. Empty string: Slack not configured.')
param slackWebhookUrl string

@secure()
@description('Generic JSON webhook URL, stored in Key Vault. Empty string: not configured.')
param jsonWebhookUrl string

@description('E-mail address for the failure and dead-letter alerts. Empty: alerts show in the portal only.')
param alertEmail string = ''

@description('NCRONTAB schedule of the reconcile timer (RECONCILE_SCHEDULE).')
param reconcileSchedule string = '0 */15 * * * *'

@description('Optional POLICY_FILE app setting. Empty: not set.')
param policyFile string = ''

@description('Hosts a webhook may post to besides Slack\'s and Teams Workflows\' own (WEBHOOK_ALLOWED_HOSTS); a JSON webhook\'s host must be listed.')
param webhookAllowedHosts string = ''

@description('Create an Event Grid custom topic that receives every transit change as a CloudEvent (README.md (Events)), with local auth disabled and EventGrid Data Sender for the function identity on it. Off by default.')
param eventTopic bool = false

@description('Days each audit blob stays immutable.')
@minValue(1)
@maxValue(146000)
param auditRetentionDays int = 365

@description('Lock the audit immutability policy at deploy time (irreversible; README.md (Deploy)): the azd postprovision hook creates and locks it, and the template leaves it alone.')
param auditPolicyLocked bool = false

@description('Always-ready instances for the event function (0: scale to zero; see app/function.bicep and README.md, Scale).')
@minValue(0)
@maxValue(10)
param alwaysReadyInstances int = 0

@description('Storage replication.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_GRS'

var tags = {
  'azd-env-name': environmentName
  application: 'er-transit-auditor'
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var groupName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
var eventsGroupName = empty(eventsResourceGroupName) ? 'rg-${environmentName}-events' : eventsResourceGroupName
var watchedSubscriptionIds = empty(watchedSubscriptions) ? [
  subscription().subscriptionId
] : split(replace(watchedSubscriptions, ' ', ''), ',')
var functionAppName = 'func-ertransit-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var stateContainerName = 'er-transit-state'
var auditContainerName = 'er-transit-audit'
var deadLetterContainerName = 'er-transit-deadletter'
var recheckQueueName = 'er-transit-recheck'
var reportContainerName = 'er-transit-report'

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: groupName
  location: location
  tags: tags
}

module identities 'app/identities.bicep' = {
  name: 'identities'
  scope: group
  params: {
    functionIdentityName: 'id-ertransit-${resourceToken}'
    deadLetterIdentityName: 'id-ertransit-deadletter-${resourceToken}'
    location: location
    tags: tags
  }
}

// Host storage (deployment package, host leases, dead letters), where the function identity is Blob Data Owner.
module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: group
  params: {
    name: 'stertransit${take(resourceToken, 13)}'
    location: location
    tags: tags
    skuName: storageSku
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
  }
}

// The evidence (state, WORM audit log, recheck queue), in an account where the identity has data roles only.
module auditStorage 'app/audit-storage.bicep' = {
  name: 'audit-storage'
  scope: group
  params: {
    name: 'staudit${take(resourceToken, 13)}'
    location: location
    tags: tags
    skuName: storageSku
    stateContainerName: stateContainerName
    auditContainerName: auditContainerName
    recheckQueueName: recheckQueueName
    reportContainerName: reportContainerName
    auditRetentionDays: auditRetentionDays
    auditPolicyLocked: auditPolicyLocked
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: group
  params: {
    logAnalyticsName: 'log-ertransit-${resourceToken}'
    applicationInsightsName: 'appi-ertransit-${resourceToken}'
    actionGroupName: 'ag-ertransit-${resourceToken}'
    location: location
    tags: tags
    alertEmail: alertEmail
  }
}

module vault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: group
  params: {
    name: 'kv-ertr-${take(resourceToken, 13)}'
    location: location
    tags: tags
    teamsWebhookUrl: teamsWebhookUrl
    slackWebhookUrl: slackWebhookUrl
    jsonWebhookUrl: jsonWebhookUrl
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: group
  params: {
    storageAccountName: storage.outputs.name
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    auditStorageAccountName: auditStorage.outputs.name
    stateContainerName: auditStorage.outputs.stateContainerName
    auditContainerName: auditStorage.outputs.auditContainerName
    reportContainerName: auditStorage.outputs.reportContainerName
    keyVaultName: vault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    functionPrincipalId: identities.outputs.functionPrincipalId
    deadLetterPrincipalId: identities.outputs.deadLetterPrincipalId
  }
}

module events 'app/eventtopic.bicep' = if (eventTopic) {
  name: 'eventtopic'
  scope: group
  params: {
    name: 'evgt-ertransit-changes-${resourceToken}'
    location: location
    tags: tags
    functionPrincipalId: identities.outputs.functionPrincipalId
  }
}

module function 'app/function.bicep' = {
  name: 'function'
  scope: group
  params: {
    name: functionAppName
    planName: 'plan-ertransit-${resourceToken}'
    location: location
    tags: tags
    identityId: identities.outputs.functionIdentityId
    identityClientId: identities.outputs.functionClientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    auditBlobEndpoint: auditStorage.outputs.blobEndpoint
    auditQueueEndpoint: auditStorage.outputs.queueEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    watchedSubscriptionIds: watchedSubscriptionIds
    stateContainerName: stateContainerName
    auditContainerName: auditContainerName
    recheckQueueName: recheckQueueName
    reportContainerName: reportContainerName
    reconcileSchedule: reconcileSchedule
    policyFile: policyFile
    webhookAllowedHosts: webhookAllowedHosts
    teamsSecretUri: vault.outputs.teamsSecretUri
    slackSecretUri: vault.outputs.slackSecretUri
    jsonSecretUri: vault.outputs.jsonSecretUri
    eventTopicEndpoint: eventTopic ? events.outputs.endpoint : ''
    alwaysReadyInstances: alwaysReadyInstances
  }
  // The host starts with identity-based storage and Key Vault references: grant first, then start.
  dependsOn: [
    rbac
  ]
}

module watch 'app/watched-subscription.bicep' = [for watchedId in watchedSubscriptionIds: {
  name: take('${environmentName}-watch-${watchedId}', 64)
  scope: subscription(watchedId)
  params: {
    location: location
    tags: tags
    eventsResourceGroupName: eventsGroupName
    systemTopicName: 'evgt-ertransit-${environmentName}'
    functionPrincipalId: identities.outputs.functionPrincipalId
    functionAppId: function.outputs.id
    subscribeEvents: subscribeEvents
    deadLetterIdentityId: identities.outputs.deadLetterIdentityId
    storageAccountId: storage.outputs.id
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    actionGroupId: monitoring.outputs.actionGroupId
  }
  // Dead-lettering needs the Event Grid identity's grant on the container.
  dependsOn: [
    rbac
  ]
}]

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = group.name
output AZURE_FUNCTION_APP_NAME string = function.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output WATCHED_SUBSCRIPTIONS string = join(watchedSubscriptionIds, ',')
output AUDIT_STORAGE_ACCOUNT_NAME string = auditStorage.outputs.name
output AUDIT_CONTAINER string = auditContainerName
output REPORT_CONTAINER string = reportContainerName
output AUDIT_RETENTION_DAYS int = auditRetentionDays
output EVENTGRID_TOPIC_ENDPOINT string = eventTopic ? events.outputs.endpoint : ''
