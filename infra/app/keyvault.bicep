// Key Vault holding the alert webhook URLs. The function app reads them through Key Vault references
// (@Microsoft.KeyVault(SecretUri=...)) with its user-assigned identity; nothing else can read them.
// A webhook parameter left empty creates no secret, and the matching app setting is not created either,
// which the code reads as "channel not configured".

param name string
param location string
param tags object = {}

@secure()
@description('Teams Workflows webhook URL. Empty: Teams not configured.')
param teamsWebhookUrl string

@secure()
@description('Slack incoming-webhook URL. Empty: Slack not configured.')
param slackWebhookUrl string

@secure()
@description('Generic JSON webhook URL. Empty: not configured.')
param jsonWebhookUrl string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Access is Azure RBAC only (Key Vault Secrets User for the function identity), no access policies.
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // Deleted secrets stay recoverable and unpurgeable for 90 days (irreversible; see README.md (Deploy), Tear down).
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // Flex Consumption without VNet integration resolves Key Vault references over the public endpoint.
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource teamsSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(teamsWebhookUrl)) {
  parent: vault
  name: 'teams-webhook-url'
  properties: {
    value: teamsWebhookUrl
    contentType: 'text/uri'
    attributes: {
      enabled: true
    }
  }
}

resource slackSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(slackWebhookUrl)) {
  parent: vault
  name: 'slack-webhook-url'
  properties: {
    value: slackWebhookUrl
    contentType: 'text/uri'
    attributes: {
      enabled: true
    }
  }
}

resource jsonSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(jsonWebhookUrl)) {
  parent: vault
  name: 'json-webhook-url'
  properties: {
    value: jsonWebhookUrl
    contentType: 'text/uri'
    attributes: {
      enabled: true
    }
  }
}

output id string = vault.id
output name string = vault.name
// Versionless secret URIs (not the values): the app picks up a rotated secret without a redeploy.
output teamsSecretUri string = empty(teamsWebhookUrl) ? '' : teamsSecret.properties.secretUri
output slackSecretUri string = empty(slackWebhookUrl) ? '' : slackSecret.properties.secretUri
output jsonSecretUri string = empty(jsonWebhookUrl) ? '' : jsonSecret.properties.secretUri
