// Optional Event Grid custom topic that receives every ER-transit change as a CloudEvent (ErTransit.PairOpened,
// ErTransit.PairClosed, ErTransit.Health; README.md (Events)). Entra-only: local (key and SAS) auth is disabled,
// and the function identity may publish to this topic and nothing else (EventGrid Data Sender, topic scope).

param name string
param location string
param tags object = {}

@description('Principal (object) id of the function app\'s user-assigned identity (the only publisher).')
param functionPrincipalId string

var roles = loadJsonContent('../roles.json')

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  // Lets subscribers deliver to Event Hubs, Service Bus or Storage queues with an identity instead of keys.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    // The auditor publishes CloudEvents 1.0 (azure.eventgrid.EventGridPublisherClient with CloudEvent).
    inputSchema: 'CloudEventSchemaV1_0'
    // Keys and SAS tokens are refused: only Microsoft Entra tokens of identities holding Data Sender.
    disableLocalAuth: true
    // The Flex Consumption app has no VNet integration, so it publishes over the public endpoint (checkov skips).
    publicNetworkAccess: 'Enabled'
  }
}

resource functionDataSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, functionPrincipalId, roles.eventGridDataSender.id)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender.id)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ER-transit auditor: publish transit changes to its event topic.'
  }
}

output id string = topic.id
output name string = topic.name
output endpoint string = topic.properties.endpoint
