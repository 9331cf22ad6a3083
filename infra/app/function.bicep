// The auditor itself: a Python 3.11 Function App on the Flex Consumption plan, running as a user-assigned
// managed identity. Every connection (host storage, state/audit/queue storage, Key Vault references,
// Application Insights) uses that identity; there is no key or connection string with a secret in it.

param name string
param planName string
param location string
param tags object = {}

@description('azd service name (azure.yaml) this app is deployed as.')
param serviceName string = 'auditor'

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of the same identity (for DefaultAzureCredential and identity-based connections).')
param identityClientId string

param storageAccountName string
param storageBlobEndpoint string
@description('Blob and queue endpoints of the evidence account (state, audit log, recheck queue): the AuditorStorage connection.')
param auditBlobEndpoint string
param auditQueueEndpoint string
param deploymentContainerName string

param applicationInsightsConnectionString string

@description('Watched subscription ids.')
param watchedSubscriptionIds array

param stateContainerName string = 'er-transit-state'
param auditContainerName string = 'er-transit-audit'
param reportContainerName string = 'er-transit-report'
param recheckQueueName string = 'er-transit-recheck'

@description('NCRONTAB schedule of the reconcile timer.')
param reconcileSchedule string = '0 */15 * * * *'

@description('WEBHOOK_ALLOWED_HOSTS: hosts a webhook may post to besides Slack\'s and Teams Workflows\' own (needed for a JSON webhook). Empty: setting not created.')
param webhookAllowedHosts string = ''

@description('Optional path of a policy file, read by the code as POLICY_FILE. Empty: setting not created.')
param policyFile string = ''

@description('Versionless Key Vault secret URIs of the webhook URLs; empty: channel not configured.')
param teamsSecretUri string = ''
param slackSecretUri string = ''
param jsonSecretUri string = ''

@description('Endpoint of the ER-transit event topic (eventtopic.bicep). Empty: events are not published.')
param eventTopicEndpoint string = ''

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Always-ready instances for on_resource_event (Flex Consumption "alwaysReady", billed while idle). 0: the plan scales to zero, and the first event after an idle spell starts a new instance that loads its working copy (about 1.5 s more at 20,000 VNets; README.md, Scale). 1 or more: events find a warm instance (about 0.5 s).')
@minValue(0)
@maxValue(10)
param alwaysReadyInstances int = 0

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

var baseSettings = [
  // Functions host storage, identity-based (Flex Consumption supports no other form without keys).
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storageAccountName
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  // State, audit and the recheck queue (the evidence account): the "AuditorStorage" connection of the code and
  // of the queue trigger.
  {
    name: 'AuditorStorage__blobServiceUri'
    value: auditBlobEndpoint
  }
  {
    name: 'AuditorStorage__queueServiceUri'
    value: auditQueueEndpoint
  }
  {
    name: 'AuditorStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AuditorStorage__clientId'
    value: identityClientId
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'WATCHED_SUBSCRIPTIONS'
    value: join(watchedSubscriptionIds, ',')
  }
  {
    name: 'STATE_CONTAINER'
    value: stateContainerName
  }
  {
    name: 'AUDIT_CONTAINER'
    value: auditContainerName
  }
  {
    name: 'REPORT_CONTAINER'
    value: reportContainerName
  }
  {
    name: 'RECHECK_QUEUE'
    value: recheckQueueName
  }
  {
    name: 'RECONCILE_SCHEDULE'
    value: reconcileSchedule
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: applicationInsightsConnectionString
  }
  // Application Insights has local auth disabled: send telemetry with the identity's Entra token.
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
]

// Optional settings exist only when configured, so "missing" keeps meaning "not configured".
var teamsSetting = empty(teamsSecretUri) ? [] : [
  {
    name: 'TEAMS_WEBHOOK_URL'
    value: '@Microsoft.KeyVault(SecretUri=${teamsSecretUri})'
  }
]
var slackSetting = empty(slackSecretUri) ? [] : [
  {
    name: 'SLACK_WEBHOOK_URL'
    value: '@Microsoft.KeyVault(SecretUri=${slackSecretUri})'
  }
]
var jsonSetting = empty(jsonSecretUri) ? [] : [
  {
    name: 'JSON_WEBHOOK_URL'
    value: '@Microsoft.KeyVault(SecretUri=${jsonSecretUri})'
  }
]
var allowedHostsSetting = empty(webhookAllowedHosts) ? [] : [
  {
    name: 'WEBHOOK_ALLOWED_HOSTS'
    value: webhookAllowedHosts
  }
]

// The topic takes Entra tokens only: no EVENTGRID_TOPIC_KEY here. The event source is this app's resource id.
var eventTopicSettings = empty(eventTopicEndpoint) ? [] : [
  {
    name: 'EVENTGRID_TOPIC_ENDPOINT'
    value: eventTopicEndpoint
  }
  {
    name: 'EVENTGRID_EVENT_SOURCE'
    value: resourceId('Microsoft.Web/sites', name)
  }
]
var policySetting = empty(policyFile) ? [] : [
  {
    name: 'POLICY_FILE'
    value: policyFile
  }
]

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Event Grid delivers to the function's endpoint over the internet (with the function's system key);
    // there is no HTTP trigger. Private endpoints would need VNet integration (README.md (Deploy), checkov skips).
    publicNetworkAccess: 'Enabled'
    clientCertEnabled: false
    // Key Vault references resolve with the user-assigned identity (the default would be a system identity).
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(baseSettings, teamsSetting, slackSetting, jsonSetting, allowedHostsSetting, policySetting,
        eventTopicSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        // A function of its own (not an http/blob/durable group): named `function:<name>` (FunctionsAlwaysReadyConfig).
        alwaysReady: (alwaysReadyInstances > 0) ? [
          {
            name: 'function:on_resource_event'
            instanceCount: alwaysReadyInstances
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No FTP and no basic-auth publishing: azd and "az functionapp deploy" publish with a Microsoft Entra token.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
