// One storage account for the Functions host (deployment package, host leases), the auditor's committed
// state, the tamper-evident audit log, the recheck queue and Event Grid's dead letters.
// Identity-only: shared-key (account key and SAS) access is disabled.

@description('Storage account name (3-24 lowercase letters and digits).')
param name string

param location string
param tags object = {}

@description('Replication. Geo-redundant by default: the audit log is the product\'s record of what happened.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GRS'

@description('Blob container Flex Consumption deploys the app package to.')
param deploymentContainerName string

param stateContainerName string = 'er-transit-state'
param auditContainerName string = 'er-transit-audit'
param deadLetterContainerName string = 'er-transit-deadletter'
param recheckQueueName string = 'er-transit-recheck'

@description('Days an audit blob stays immutable after it is written (time-based retention).')
@minValue(1)
@maxValue(146000)
param auditRetentionDays int = 365

@description('Set to true once the audit immutability policy has been locked: a locked policy can no longer be updated by a deployment, only extended with "az storage container immutability-policy extend".')
param auditPolicyLocked bool = false

@description('Days deleted blobs and containers can be restored.')
@minValue(1)
@maxValue(365)
param softDeleteDays int = 14

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    // Flex Consumption, the identity-based host and binding connections and Event Grid dead-lettering with a
    // managed identity all work without keys, so keys and SAS are off.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // The Flex Consumption app has no VNet integration here and Event Grid writes dead letters over the
      // public endpoint; access is gated by Microsoft Entra ID and RBAC instead (see README.md (Deploy), checkov skips).
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Committed pair set: overwritten under an ETag condition on every commit, so it must stay mutable.
resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: stateContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource auditContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: auditContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Write once, read many: audit blobs cannot be overwritten or deleted until they are auditRetentionDays old.
// allowProtectedAppendWrites lets the auditor append blocks to an append blob (never modify or remove them).
// Deployed unlocked; lock it once you are happy with the period (README.md (Deploy)), then set auditPolicyLocked.
resource auditImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (!auditPolicyLocked) {
  parent: auditContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: auditRetentionDays
    allowProtectedAppendWrites: true
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource recheckQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: recheckQueueName
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output deadLetterContainerName string = deadLetterContainer.name
