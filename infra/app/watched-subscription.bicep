// Everything the auditor needs in one watched subscription: Reader for the function identity on the
// subscription, and a resource group holding the Event Grid system topic for the subscription's
// resource events (events.bicep). Deployed once per watched subscription by main.bicep.
targetScope = 'subscription'

param location string
param tags object = {}

@description('Resource group created in this subscription for the Event Grid system topic.')
param eventsResourceGroupName string

param systemTopicName string

@description('Principal (object) id of the function app\'s identity.')
param functionPrincipalId string

@description('Resource id of the function app (in the auditor\'s subscription).')
param functionAppId string

@description('Create the event subscription. False on the very first deployment, before the code exists.')
param subscribeEvents bool

param deadLetterIdentityId string
param storageAccountId string
param deadLetterContainerName string

@description('Action group for the dead-letter alert; empty for none.')
param actionGroupId string = ''

var roles = loadJsonContent('../roles.json')

// Reader on the watched subscription: the function reads the network topology through ARM GET and
// Resource Graph. Reader has no actions (no listKeys), so it can read no secret and change nothing; there is
// no built-in network-only read role (a custom one is possible, see README.md (Deploy)).
resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, functionPrincipalId, roles.reader.id)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.reader.id)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ER-transit auditor: read the network topology.'
  }
}

resource eventsGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: eventsResourceGroupName
  location: location
  tags: tags
}

module events 'events.bicep' = {
  name: take('er-transit-events-${uniqueString(subscription().id, eventsResourceGroupName)}', 64)
  scope: eventsGroup
  params: {
    systemTopicName: systemTopicName
    tags: tags
    functionAppId: functionAppId
    subscribeEvents: subscribeEvents
    deadLetterIdentityId: deadLetterIdentityId
    storageAccountId: storageAccountId
    deadLetterContainerName: deadLetterContainerName
    actionGroupId: actionGroupId
  }
}

output systemTopicId string = events.outputs.systemTopicId
