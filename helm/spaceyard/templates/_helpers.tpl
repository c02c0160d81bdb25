{{/* Names, labels and shared pieces of the Spaceyard chart. */}}

{{- define "spaceyard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "spaceyard.labels" -}}
app.kubernetes.io/name: spaceyard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "platform") */}}
{{- define "spaceyard.selectorLabels" -}}
app.kubernetes.io/name: spaceyard
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "spaceyard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "spaceyard.secretName" -}}
{{- default (include "spaceyard.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{- define "spaceyard.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s-redis:6379/0" (include "spaceyard.fullname" .) -}}
{{- else -}}
{{- .Values.redis.externalUrl -}}
{{- end -}}
{{- end -}}

{{/* The PostgreSQL password: values, else the one already in the cluster, else a new random one.
Decided once per render and kept in .Values.postgresql.password, so that the Secret of the database
and the Secret of the URLs (two templates, two calls) agree: two randAlphaNum calls would not. */}}
{{- define "spaceyard.postgresPassword" -}}
{{- if not .Values.postgresql.password -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (printf "%s-postgresql" (include "spaceyard.fullname" .)) -}}
{{- if and $existing $existing.data (index $existing.data "password") -}}
{{- $_ := set .Values.postgresql "password" (index $existing.data "password" | b64dec) -}}
{{- else -}}
{{- $_ := set .Values.postgresql "password" (randAlphaNum 32) -}}
{{- end -}}
{{- end -}}
{{- .Values.postgresql.password -}}
{{- end -}}

{{- define "spaceyard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "spaceyard.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Environment shared by the platform, the worker and the controller. */}}
{{- define "spaceyard.env" -}}
- name: SPACEYARD_RUNTIME
  value: kubernetes
- name: SPACEYARD_DATA_DIR
  value: /data
- name: SPACEYARD_PUBLIC_URL
  value: {{ printf "%s://%s" .Values.scheme .Values.host | quote }}
- name: SPACEYARD_APPS_DOMAIN
  value: {{ .Values.appsDomain | quote }}
- name: SPACEYARD_FLAVORS_FILE
  value: /etc/spaceyard/flavors.yaml
- name: SPACEYARD_KUBERNETES_NAMESPACE
  value: {{ .Values.spaces.namespace | quote }}
- name: SPACEYARD_KUBERNETES_PLATFORM_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: SPACEYARD_KUBERNETES_GATEWAY_LABELS
  value: {{ include "spaceyard.selectorLabels" (dict "root" . "component" "platform") | fromYaml | toJson | quote }}
- name: SPACEYARD_KUBERNETES_BLOCKED_CIDRS
  value: {{ .Values.spaces.blockedCidrs | toJson | quote }}
- name: SPACEYARD_KUBERNETES_IMAGE_PULL_SECRETS
  value: {{ .Values.spaces.imagePullSecrets | toJson | quote }}
{{- with .Values.spaces.runtimeClassName }}
- name: SPACEYARD_KUBERNETES_RUNTIME_CLASS
  value: {{ . | quote }}
{{- end }}
- name: SPACEYARD_KUBERNETES_HUB_RELAY_PORT
  value: {{ .Values.spaces.hubRelayPort | quote }}
- name: SPACEYARD_KUBERNETES_HUB_RELAY_SERVICE
  value: {{ printf "%s-hub" (include "spaceyard.fullname" .) | quote }}
- name: SPACEYARD_REGISTRY
  value: {{ .Values.registry.url | quote }}
- name: SPACEYARD_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "spaceyard.fullname" . }}-urls
      key: redis-url
- name: SPACEYARD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "spaceyard.fullname" . }}-urls
      key: database-url
{{- end -}}

{{/* Pod-level settings shared by every pod of the chart: no service links (they would inject
SPACEYARD_PORT=tcp://... for a Service named "spaceyard", which the settings read as the port),
and the optional DNS override. */}}
{{- define "spaceyard.podCommon" -}}
enableServiceLinks: false
{{- with .Values.dnsPolicy }}
dnsPolicy: {{ . }}
{{- end }}
{{- with .Values.dnsConfig }}
dnsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
