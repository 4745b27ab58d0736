{{/* Names, labels and images shared by the templates. */}}

{{- define "slam.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "slam.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: slam
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "slam.operator.selector" -}}
app.kubernetes.io/name: slam-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "slam.dashboard.selector" -}}
app.kubernetes.io/name: slam-dashboard
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "slam.gateway.selector" -}}
app.kubernetes.io/name: slam-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "slam.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "slam.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: name the existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "slam.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "slam.dashboardImage" -}}
{{- printf "%s:%s" .Values.dashboard.image.repository (default .Chart.AppVersion .Values.dashboard.image.tag) -}}
{{- end -}}

{{- define "slam.scoringImage" -}}
{{- printf "%s:%s" .Values.scoringImage.repository (default .Chart.AppVersion .Values.scoringImage.tag) -}}
{{- end -}}

{{/* The Secret holding the results store's URL (key `url`), or "" when there is none. */}}
{{- define "slam.storeSecret" -}}
{{- if .Values.store.existingSecret -}}
{{- .Values.store.existingSecret -}}
{{- else if or .Values.store.url .Values.postgresql.enabled -}}
slam-store
{{- end -}}
{{- end -}}

{{- define "slam.dashboard.tokensSecret" -}}
{{- default (printf "%s-dashboard-tokens" (include "slam.fullname" .)) .Values.dashboard.tokens.existingSecret -}}
{{- end -}}

{{/* The pod's and the container's security context (values: podSecurityContext, securityContext). */}}
{{- define "slam.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}
