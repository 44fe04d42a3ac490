{{/* Release-scoped base name of every object: the release name, or release-chart when it lacks the chart name. */}}
{{- define "bindrift.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "bindrift.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select a component's pods: call with (dict "ctx" $ "component" "agent"). */}}
{{- define "bindrift.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bindrift.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{- define "bindrift.labels" -}}
{{ include "bindrift.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "bindrift.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "bindrift.secretName" -}}
{{- default (include "bindrift.fullname" .) .Values.secret.name -}}
{{- end -}}

{{/* A volume name for a host path: /run/containerd -> run-containerd. */}}
{{- define "bindrift.pathVolume" -}}
{{- trimPrefix "/" . | replace "/" "-" | replace "." "-" | lower | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Pod-level settings shared by the unprivileged components (worker, API). */}}
{{- define "bindrift.podCommon" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "bindrift.configVolume" -}}
- name: config
  configMap:
    name: {{ include "bindrift.fullname" . }}-config
    items:
      - key: config.toml
        path: config.toml
{{- end -}}
