{{/* The chart's name, at most 63 characters (a DNS label). */}}
{{- define "driftgate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name: the release name, with the chart's name unless the release already holds it. */}}
{{- define "driftgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "driftgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "driftgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "driftgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "driftgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "driftgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "driftgate.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The environment the chart's Secret holds: variable name -> value. */}}
{{- define "driftgate.secretEnv" -}}
{{- $env := dict -}}
{{- with .Values.secrets.apiToken }}{{ $_ := set $env "DRIFTGATE_API_TOKEN" . }}{{ end -}}
{{- with .Values.secrets.webhooks }}{{ $_ := set $env "DRIFTGATE__WEBHOOKS" (toJson .) }}{{ end -}}
{{- with .Values.secrets.elasticsearchHosts }}{{ $_ := set $env "DRIFTGATE__ELASTICSEARCH__HOSTS" (toJson .) }}{{ end -}}
{{- range $name, $value := .Values.secrets.env }}{{ $_ := set $env $name (toString $value) }}{{ end -}}
{{- toJson $env -}}
{{- end -}}

{{/* The Secret the container reads its environment from, or "" when there is none. */}}
{{- define "driftgate.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else if ne (include "driftgate.secretEnv" .) "{}" -}}
{{- include "driftgate.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* The driftgate config file: the values' config with the settings the pod layout decides. */}}
{{- define "driftgate.config" -}}
{{- if dig "api" "token" "" .Values.config -}}
{{- fail "config.api.token would land in a ConfigMap: set secrets.apiToken (or secrets.existingSecret) instead" -}}
{{- end -}}
{{- range $webhook := (dig "webhooks" list .Values.config) -}}
{{- if $webhook.secret -}}
{{- fail "config.webhooks[].secret would land in a ConfigMap: list the webhooks under secrets.webhooks instead" -}}
{{- end -}}
{{- end -}}
{{- $config := deepCopy .Values.config -}}
{{- $api := merge (dict "host" "0.0.0.0" "port" (int .Values.port)) (dig "api" dict .Values.config) -}}
{{- $_ := set $config "api" $api -}}
{{- $_ := set $config "state" (dict "dir" "/var/lib/driftgate") -}}
{{- toYaml $config -}}
{{- end -}}
