// Event Grid for one watched subscription: a system topic on the subscription's resource events and an
// event subscription that delivers exactly the watched write/delete operations to the on_resource_event
// function. Undeliverable events are retried, then dead-lettered to storage, and an alert fires.

param systemTopicName string
param tags object = {}

@description('Resource id of the function app that receives the events.')
param functionAppId string

@description('Name of the Event Grid-triggered function (function_app.py).')
param functionName string = 'on_resource_event'

@description('Create the event subscription (the function must already be deployed: Event Grid checks it).')
param subscribeEvents bool

@description('User-assigned identity the system topic uses to write dead letters.')
param deadLetterIdentityId string

param storageAccountId string
param deadLetterContainerName string

@description('Action group for the dead-letter alert; empty for none.')
param actionGroupId string = ''

@description('Delivery attempts before an event is dead-lettered.')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Minutes an event is retried before it is dead-lettered.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

// The same file shared/adapters/events.py reads, so the platform filter and the code never disagree.
var watched = loadJsonContent('../../shared/adapters/watched_operations.json')

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: 'global'
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${deadLetterIdentityId}': {}
    }
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

resource toFunction 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (subscribeEvents) {
  parent: topic
  name: 'er-transit-auditor'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/${functionName}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: watched.eventTypes
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: watched.operations
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'UserAssigned'
        userAssignedIdentity: deadLetterIdentityId
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

// Any dead-lettered event means Event Grid gave up on a change; the timer reconcile will still catch it,
// but an operator should know the push path is broken.
resource deadLettered 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${systemTopicName}-dead-lettered'
  location: 'global'
  tags: tags
  properties: {
    description: 'Event Grid could not deliver a resource event to the ER-transit auditor; it is in the dead-letter container.'
    severity: 2
    enabled: true
    scopes: [
      topic.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'DeadLettered'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DeadLetteredCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    actions: empty(actionGroupId) ? [] : [
      {
        actionGroupId: actionGroupId
      }
    ]
  }
}

output systemTopicId string = topic.id
