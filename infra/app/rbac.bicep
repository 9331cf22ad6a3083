// Role assignments inside the auditor's resource group. Each grants data-plane access to one resource,
// never a control-plane role on the group. The Reader assignments on watched subscriptions are in
// watched-subscription.bicep. Why each role: infra/roles.json and README.md (Deploy).

param storageAccountName string
param deadLetterContainerName string
param keyVaultName string
param applicationInsightsName string

@description('Principal (object) id of the function app\'s user-assigned identity.')
param functionPrincipalId string

@description('Principal (object) id of the identity Event Grid uses to write dead letters.')
param deadLetterPrincipalId string

var roles = loadJsonContent('../roles.json')

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Flex Consumption deployment container + identity-based AzureWebJobsStorage require Blob Data Owner;
// the same grant covers the state and audit containers (the audit container stays WORM regardless).
resource functionBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, roles.storageBlobDataOwner.id)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner.id)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ER-transit auditor: Flex deployment package, host storage, state and audit blobs.'
  }
}

// Recheck queue trigger (read/delete messages), enqueueing rechecks, and the host's poison queue.
resource functionQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, roles.storageQueueDataContributor.id)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor.id)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ER-transit auditor: recheck queue.'
  }
}

// Resolve the webhook URL Key Vault references; read-only on secret values.
resource functionSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, functionPrincipalId, roles.keyVaultSecretsUser.id)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser.id)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ER-transit auditor: webhook URLs.'
  }
}

// Entra-authenticated telemetry (Application Insights local auth is disabled).
resource functionMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionPrincipalId, roles.monitoringMetricsPublisher.id)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher.id)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ER-transit auditor: telemetry.'
  }
}

// Event Grid writes undeliverable events to the dead-letter container, and nowhere else.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, deadLetterPrincipalId, roles.storageBlobDataContributor.id)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor.id)
    principalId: deadLetterPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ER-transit auditor: Event Grid dead letters.'
  }
}
