// The auditor's evidence: committed state, the tamper-evident audit log and the recheck queue, in a storage
// account of their own. The function identity holds data-plane roles only here (rbac.bicep): it can append to
// the audit log but cannot delete the audit container or change its immutability policy; only someone with
// control-plane rights on this account (Owner, Contributor, Storage Account Contributor) can, and not even
// they once the policy is locked (auditPolicyLocked, infra/scripts/lock-audit-policy.sh).
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

param stateContainerName string = 'er-transit-state'
param auditContainerName string = 'er-transit-audit'
param recheckQueueName string = 'er-transit-recheck'
param reportContainerName string = 'er-transit-report'

@description('Days an audit blob stays immutable after it is written (time-based retention).')
@minValue(1)
@maxValue(146000)
param auditRetentionDays int = 365

@description('Lock the audit immutability policy (irreversible): the deployment then leaves the policy to the azd postprovision hook (infra/scripts/lock-audit-policy.sh), which creates it if missing and locks it; a locked policy rejects updates and can only be extended.')
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
      // The Flex Consumption app has no VNet integration here, so it reaches this account over the public
      // endpoint; access is gated by Microsoft Entra ID and RBAC instead (see README.md (Deploy), checkov skips).
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

// Committed pair set: overwritten under an ETag condition on every commit, so it must stay mutable.
resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: stateContainerName
  properties: {
    publicAccess: 'None'
  }
}

// The report page (latest.html and a dated copy per committed change): private like everything here; readers
// need Storage Blob Data Reader on this container (README, "The report page in Azure").
resource reportContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: reportContainerName
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
// Deployed unlocked by default (so `azd down` works for a trial); with auditPolicyLocked the postprovision hook
// creates and locks it instead, since ARM has no declarative lock (it is a POST .../lock action).
resource auditImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (!auditPolicyLocked) {
  parent: auditContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: auditRetentionDays
    allowProtectedAppendWrites: true
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
output stateContainerName string = stateContainer.name
output auditContainerName string = auditContainer.name
output reportContainerName string = reportContainer.name
