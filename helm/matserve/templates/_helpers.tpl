{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "matserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, plus the chart name unless it already holds it. */}}
{{- define "matserve.fullname" -}}
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

{{- define "matserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "matserve.commonLabels" -}}
helm.sh/chart: {{ include "matserve.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "matserve.name" . }}
{{- end }}

{{/* The matserve pods (component server); the Service selects these only. */}}
{{- define "matserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "matserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "matserve.labels" -}}
{{ include "matserve.commonLabels" . }}
{{ include "matserve.selectorLabels" . }}
{{- end }}

{{- define "matserve.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "matserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "matserve.redisLabels" -}}
{{ include "matserve.commonLabels" . }}
{{ include "matserve.redisSelectorLabels" . }}
{{- end }}

{{- define "matserve.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Name of the Secret holding MATSERVE_API_KEYS; empty when no keys are configured. */}}
{{- define "matserve.apiKeysSecret" -}}
{{- if .Values.apiKeys.existingSecret }}
{{- .Values.apiKeys.existingSecret }}
{{- else if .Values.apiKeys.create }}
{{- printf "%s-api-keys" (include "matserve.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "matserve.pvcName" -}}
{{- default (printf "%s-data" (include "matserve.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{- define "matserve.redisName" -}}
{{- printf "%s-redis" (include "matserve.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* MATSERVE_REDIS_URL: the chart's Redis, else redis.externalUrl, else empty. */}}
{{- define "matserve.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s:%d/0" (include "matserve.redisName" .) (int .Values.redis.port) }}
{{- else if .Values.redis.externalUrl }}
{{- .Values.redis.externalUrl }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: it must outlast the preStop sleep plus the drain,
or the kubelet kills in-flight requests. Default: those plus 45 s (Triton's stop).
*/}}
{{- define "matserve.terminationGracePeriodSeconds" -}}
{{- $drain := int (ceil .Values.drainTimeoutSeconds) }}
{{- $before := add (int .Values.preStopSleepSeconds) $drain }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $before 45 }}
{{- else }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- if le $grace $before }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + drainTimeoutSeconds (%d)" $grace $before) }}
{{- end }}
{{- $grace }}
{{- end }}
{{- end }}

{{/* One env value as text: whole numbers without an exponent (YAML numbers arrive as float64). */}}
{{- define "matserve.envValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}
{{- int64 . | toString | quote }}
{{- else }}
{{- toString . | quote }}
{{- end }}
{{- end }}
