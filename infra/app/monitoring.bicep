// Telemetry and the alerts that make the auditor safe to forget: a Log Analytics workspace, a
// workspace-based Application Insights (Entra-only ingestion), an action group, and an alert when the
// function fails repeatedly. The dead-letter alerts live next to each Event Grid system topic (events.bicep).

param logAnalyticsName string
param applicationInsightsName string
param actionGroupName string
param location string
param tags object = {}

@description('E-mail address that receives alerts. Empty: alerts fire in the portal only.')
param alertEmail string = ''

@description('Failed function executions within 30 minutes that raise the alert.')
@minValue(1)
param failureThreshold int = 3

@minValue(30)
@maxValue(730)
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Instrumentation-key ingestion is off: the function sends telemetry with its managed identity.
    DisableLocalAuth: true
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'ertransit'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var alertActions = empty(alertEmail) ? [] : [
  {
    actionGroupId: actionGroup.id
  }
]

// Each function invocation is an Application Insights request; a failed invocation is a failed request.
resource functionFailures 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${applicationInsightsName}-function-failures'
  location: 'global'
  tags: tags
  properties: {
    description: 'The ER-transit auditor function failed repeatedly: events or reconciles are not being audited.'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT30M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'FailedExecutions'
          metricNamespace: 'microsoft.insights/components'
          metricName: 'requests/failed'
          operator: 'GreaterThanOrEqual'
          threshold: failureThreshold
          timeAggregation: 'Count'
        }
      ]
    }
    actions: alertActions
  }
}

// The auditor watches itself (shared/core/health.py): every health alert it raises is logged with a fixed marker, and
// every complete reconcile logs a heartbeat line. These log alerts e-mail the action group even when every chat
// channel is what broke. The markers are the constants LOG_MARKER_RAISED and LOG_MARKER_RECONCILED in
// shared/core/health.py (tests/infra checks they match); host.json keeps traces out of sampling so none is dropped.
var healthRaisedMarker = 'ER-transit health alert raised'
var reconciledMarker = 'ER-transit reconcile complete'

resource healthAlertRaised 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${applicationInsightsName}-health-alert-raised'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ER-transit auditor raised a health alert'
    description: 'The auditor raised a health alert (reads incomplete, a subscription unreadable, no reconcile, an alert channel failing, state refused); the log line says which. Chat may be what broke, so this goes by e-mail.'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: 'traces | where message startswith "${healthRaisedMarker}"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: empty(alertEmail) ? [] : [
        actionGroup.id
      ]
    }
  }
}

// The heartbeat: no complete reconcile logged in the last hour (the timer stopped, the app is down, or every
// reconcile failed or read incompletely).
resource reconcileHeartbeat 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${applicationInsightsName}-no-reconcile'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ER-transit auditor: no successful reconcile in the last hour'
    description: 'No complete reconcile in the last hour: lost events are not being caught and the auditor may be blind.'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'traces | where message startswith "${reconciledMarker}"'
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: empty(alertEmail) ? [] : [
        actionGroup.id
      ]
    }
  }
}

output workspaceId string = workspace.id
output applicationInsightsId string = appInsights.id
output applicationInsightsName string = appInsights.name
output connectionString string = appInsights.properties.ConnectionString
output actionGroupId string = empty(alertEmail) ? '' : actionGroup.id
