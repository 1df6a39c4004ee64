{{/* The CSI driver name. The driver reports it in GetPluginInfo, so it is fixed, not a value. */}}
{{- define "esan.driverName" -}}
esan.csi.dev
{{- end }}

{{/* The chart name, after nameOverride. */}}
{{- define "esan.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of the chart's namespaced objects and ClusterRoles: the release name when it already names the chart. */}}
{{- define "esan.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "esan.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object; call with (dict "root" $ "component" "controller"). */}}
{{- define "esan.labels" -}}
app.kubernetes.io/name: {{ include "esan.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: esan
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "esan.controllerServiceAccount" -}}
{{- default (printf "%s-controller" (include "esan.fullname" .)) .Values.serviceAccounts.controller.name }}
{{- end }}

{{- define "esan.nodeServiceAccount" -}}
{{- default (printf "%s-node" (include "esan.fullname" .)) .Values.serviceAccounts.node.name }}
{{- end }}

{{- define "esan.snapshotControllerServiceAccount" -}}
{{- default (printf "%s-snapshot-controller" (include "esan.fullname" .)) .Values.snapshotController.serviceAccount.name }}
{{- end }}

{{/* The controller ServiceAccount as a binding subject. */}}
{{- define "esan.controllerSubject" -}}
- kind: ServiceAccount
  name: {{ include "esan.controllerServiceAccount" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
Class parameters as a map of strings: Kubernetes reads them as map[string]string, and a value given with --set
(fsfreeze=true, sectorSize=4096) would otherwise render as a bool or a number and be refused by the API server.
*/}}
{{- define "esan.stringMap" -}}
{{- range $key, $value := . }}
{{ $key | quote }}: {{ toString $value | quote }}
{{- end }}
{{- end }}
