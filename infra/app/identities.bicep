// Two user-assigned identities with one job each: the function app's, and the one Event Grid uses to write
// dead letters (so the function's grants are never shared with Event Grid and vice versa).

param functionIdentityName string
param deadLetterIdentityName string
param location string
param tags object = {}

resource functionIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: functionIdentityName
  location: location
  tags: tags
}

resource deadLetterIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: deadLetterIdentityName
  location: location
  tags: tags
}

output functionIdentityId string = functionIdentity.id
output functionClientId string = functionIdentity.properties.clientId
output functionPrincipalId string = functionIdentity.properties.principalId
output deadLetterIdentityId string = deadLetterIdentity.id
output deadLetterPrincipalId string = deadLetterIdentity.properties.principalId
