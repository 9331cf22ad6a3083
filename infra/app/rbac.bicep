// Role assignments inside the auditor's resource group. Each grants data-plane access to one resource,
// never a control-plane role on the group. The Reader assignments on watched subscriptions are in
// watched-subscription.bicep. Why each role: infra/roles.json and README.md (Deploy).
// On the evidence account (state, audit log, recheck queue) the function identity holds no right to delete a
// container or touch an immutability policy: two custom roles with data actions only, and queue access.

param storageAccountName string
param deadLetterContainerName string
param auditStorageAccountName string
param stateContainerName string
param auditContainerName string
param reportContainerName string
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

resource auditStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: auditStorageAccountName
}

resource auditBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: auditStorage
  name: 'default'
}

resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: auditBlobService
  name: stateContainerName
}

resource auditContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: auditBlobService
  name: auditContainerName
}

resource reportContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: auditBlobService
  name: reportContainerName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Flex Consumption deployment container + identity-based AzureWebJobsStorage require Blob Data Owner, on the
// host account only (its control-plane actions include blobServices/containers/*: never on the evidence account).
resource functionBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, roles.storageBlobDataOwner.id)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner.id)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ER-transit auditor: Flex deployment package and host storage.'
  }
}

// Custom roles, data actions only (no `actions`: nothing on the control plane, so no container delete, no
// immutability policy change). Permissions per operation: "Authorize with Microsoft Entra ID", Azure Storage
// REST reference: Put Blob of a new blob and Append Block need blobs/add/action (overwriting needs blobs/write);
// Get Blob, Get Blob Properties and List Blobs need blobs/read.
resource auditAppenderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'er-transit-audit-appender')
  properties: {
    roleName: 'ER-transit audit appender ${uniqueString(resourceGroup().id)}'
    description: 'Read, create and append to audit blobs. Data actions only: cannot overwrite or delete a blob, delete the container or change its immutability policy.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource stateWriterRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'er-transit-state-writer')
  properties: {
    roleName: 'ER-transit state writer ${uniqueString(resourceGroup().id)}'
    description: 'Read and (ETag-conditioned) write the committed state blob. Data actions only: cannot delete a blob or the container.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

// The audit log: read, create and append, on the audit container only.
resource functionAuditAppender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(auditContainer.id, functionPrincipalId, auditAppenderRole.id)
  scope: auditContainer
  properties: {
    roleDefinitionId: auditAppenderRole.id
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ER-transit auditor: append-only audit log.'
  }
}

// The committed state: read and conditional overwrite, on the state container only.
resource functionStateWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(stateContainer.id, functionPrincipalId, stateWriterRole.id)
  scope: stateContainer
  properties: {
    roleDefinitionId: stateWriterRole.id
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ER-transit auditor: committed state.'
  }
}

// The report page: read and overwrite latest.html, create the dated copies; on the report container only (the
// state writer's data actions: no delete).
resource functionReportWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(reportContainer.id, functionPrincipalId, stateWriterRole.id)
  scope: reportContainer
  properties: {
    roleDefinitionId: stateWriterRole.id
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ER-transit auditor: report page.'
  }
}

// Recheck queue trigger (read/delete messages), enqueueing rechecks, and the host's poison queue, on the
// evidence account (its control-plane actions concern queues only: queueServices/queues/*).
resource functionQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(auditStorage.id, functionPrincipalId, roles.storageQueueDataContributor.id)
  scope: auditStorage
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
