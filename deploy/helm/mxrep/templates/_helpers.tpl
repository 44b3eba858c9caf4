{{/* Names shared by every template. */}}

{{- define "mxrep.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mxrep.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "mxrep.nodeSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node
{{- end -}}

{{- define "mxrep.agentSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{/* The headless Service that gives each node pod a stable DNS name. */}}
{{- define "mxrep.peerService" -}}
{{ include "mxrep.fullname" . }}-peer
{{- end -}}

{{/* Suffix of every pod's DNS name: <pod>.<peer service>.<namespace>.svc.<domain> */}}
{{- define "mxrep.podDomain" -}}
{{ include "mxrep.peerService" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end -}}

{{/* The client Service's DNS name, HOST:PORT: the API of whichever nodes are ready. */}}
{{- define "mxrep.apiAddress" -}}
{{ include "mxrep.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:{{ .Values.node.ports.api }}
{{- end -}}

{{/*
The founding members, always nodes 1..min(replicas, 3): the same list whatever the replica
count, so growing from 3 to 5 does not change who founded the cluster; nodes 4 and 5 join.
*/}}
{{- define "mxrep.founders" -}}
{{- $full := include "mxrep.fullname" . -}}
{{- $domain := include "mxrep.podDomain" . -}}
{{- $n := min (int .Values.node.replicas) 3 | int -}}
{{- $peers := list -}}
{{- range $i := until $n -}}
{{- $peers = append $peers (printf "%d=%s-%d.%s:%d" (add $i 1) $full $i $domain (int $.Values.node.ports.peer)) -}}
{{- end -}}
{{- join "," $peers -}}
{{- end -}}

{{- define "mxrep.image" -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{ .root.Values.image.registry }}/{{ .name }}:{{ $tag }}
{{- end -}}

{{- define "mxrep.nodeSecret" -}}
{{ .Values.tls.nodeSecret | default (printf "%s-node-tls" (include "mxrep.fullname" .)) }}
{{- end -}}

{{- define "mxrep.agentSecret" -}}
{{ .Values.tls.agentSecret | default (printf "%s-agent-tls" (include "mxrep.fullname" .)) }}
{{- end -}}

{{/* The TLS flags, files mounted from the role's Secret at /etc/mxrep/tls. */}}
{{- define "mxrep.tlsArgs" -}}
- --tls-ca=/etc/mxrep/tls/ca.crt
- --tls-cert=/etc/mxrep/tls/tls.crt
- --tls-key=/etc/mxrep/tls/tls.key
{{- end -}}
