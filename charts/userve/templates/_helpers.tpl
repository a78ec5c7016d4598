{{/* Chart name, overridable. */}}
{{- define "userve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name of the operator's objects. */}}
{{- define "userve.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "userve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "userve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "userve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object of the release, without a component. */}}
{{- define "userve.commonLabels" -}}
helm.sh/chart: {{ include "userve.chart" . }}
app.kubernetes.io/name: {{ include "userve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: userve
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "userve.labels" -}}
{{ include "userve.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "userve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "userve.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "userve.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Default tenant image: operator.serverImage, else the operator's own image. */}}
{{- define "userve.serverImage" -}}
{{- default (include "userve.image" .) .Values.operator.serverImage }}
{{- end }}

{{/* "true" when leader election is on: forced by leaderElection.enabled, else when replicaCount > 1. */}}
{{- define "userve.leaderElect" -}}
{{- if kindIs "invalid" .Values.leaderElection.enabled }}
{{- gt (int .Values.replicaCount) 1 }}
{{- else }}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicaCount) 1) }}
{{- fail "leaderElection.enabled=false with replicaCount > 1 would run several active operators: enable leader election or use one replica" }}
{{- end }}
{{- .Values.leaderElection.enabled }}
{{- end }}
{{- end }}

{{/* Name of the default MongoDB URI Secret, empty when there is none. */}}
{{- define "userve.defaultMongoSecret" -}}
{{- if and .Values.defaultMongo.existingSecret .Values.defaultMongo.uri }}
{{- fail "defaultMongo: set either existingSecret or uri, not both" }}
{{- end }}
{{- if .Values.defaultMongo.existingSecret }}
{{- .Values.defaultMongo.existingSecret }}
{{- else if .Values.defaultMongo.uri }}
{{- printf "%s-mongo" (include "userve.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The operator's RBAC rules, copied by hack/sync-chart-crds.sh from the
controller-gen output config/rbac/role.yaml (never edit the copy).
*/}}
{{- define "userve.operatorRules" -}}
{{- $role := .Files.Get "files/rbac/role.yaml" | fromYaml }}
{{- if not $role.rules }}
{{- fail "files/rbac/role.yaml has no rules: run `make manifests`" }}
{{- end }}
{{- toYaml $role.rules }}
{{- end }}

{{/*
The container port of tenant pods serving /metrics, which the PodMonitor
scrapes (controllers/render: MetricsPortName).
*/}}
{{- define "userve.tenantMetricsPort" -}}
metrics
{{- end }}
