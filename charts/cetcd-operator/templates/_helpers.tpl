{{/*
Named templates of the cetcd-operator chart: names, labels, the operator's RBAC rules and the
checks of the values (cetcd-operator.validate, included by deployment.yaml, fails the render
with a message naming the value).
*/}}

{{/* The chart's name: "cetcd-operator" unless nameOverride. */}}
{{- define "cetcd-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of object names: the release name, with the chart's name unless it holds it. */}}
{{- define "cetcd-operator.fullname" -}}
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

{{- define "cetcd-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cetcd-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cetcd-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cetcd-operator.labels" -}}
helm.sh/chart: {{ include "cetcd-operator.chart" . }}
{{ include "cetcd-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cetcd
{{- end }}

{{- define "cetcd-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cetcd-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespace of the chart's EtcdCluster: etcdCluster.namespace, else watchNamespace, else
the release's. */}}
{{- define "cetcd-operator.etcdClusterNamespace" -}}
{{- default (default .Release.Namespace .Values.watchNamespace) .Values.etcdCluster.namespace }}
{{- end }}

{{/*
The operator's rights in the namespaces of its clusters: the same rules as
manifests/rbac/cluster_role.yaml (tests/helm/run.sh checks they are equal).
*/}}
{{- define "cetcd-operator.rules" -}}
- apiGroups: [cetcd.io]
  resources: [etcdclusters]
  verbs: [get, list, watch, update, patch]
- apiGroups: [cetcd.io]
  resources: [etcdclusters/status]
  verbs: [get, update, patch]
- apiGroups: [cetcd.io]
  resources: [etcdclusters/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* The Lease rights of leader election (manifests/rbac/leader_election_role.yaml). */}}
{{- define "cetcd-operator.leaseRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end }}

{{/* Checks of the values; renders nothing. */}}
{{- define "cetcd-operator.validate" -}}
{{- if not .Values.image.repository }}
{{- fail "image.repository is required" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled: replicas without a Lease would act on the same clusters at once" }}
{{- end }}
{{- $workers := int .Values.workers }}
{{- if or (lt $workers 1) (gt $workers 8) }}
{{- fail (printf "workers must be 1 to 8 (the operator's --workers), not %s" (toString .Values.workers)) }}
{{- end }}
{{- $level := toString .Values.logLevel }}
{{- if not (or (eq $level "debug") (eq $level "info") (eq $level "warn") (eq $level "error")) }}
{{- fail (printf "logLevel must be debug, info, warn or error, not %q" $level) }}
{{- end }}
{{- $podLabels := .Values.podLabels | default dict }}
{{- range $key := list "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/part-of" }}
{{- if hasKey $podLabels $key }}
{{- fail (printf "podLabels must not set %s: the chart sets it" $key) }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not (and .Values.metrics.enabled .Values.metrics.service.enabled)) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled and metrics.service.enabled" }}
{{- end }}
{{- if and .Values.etcdCluster.create .Values.watchNamespace }}
{{- if ne (include "cetcd-operator.etcdClusterNamespace" .) (toString .Values.watchNamespace) }}
{{- fail (printf "etcdCluster.namespace %s is not watchNamespace %s: the operator would not see the cluster" (include "cetcd-operator.etcdClusterNamespace" .) (toString .Values.watchNamespace)) }}
{{- end }}
{{- end }}
{{- end }}
