{{/* A process's Kubernetes name: `order_service` becomes <release>-order-service. */}}
{{- define "pharmacy.name" -}}
{{- printf "%s-%s" .root.Release.Name (.service | replace "_" "-") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pharmacy.selector" -}}
app.kubernetes.io/name: {{ .service | replace "_" "-" }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "pharmacy.labels" -}}
{{ include "pharmacy.selector" . }}
app.kubernetes.io/part-of: pharmacy
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Whether a process is the gateway, the journal, or a back-end service with an operator port. */}}
{{- define "pharmacy.backend" -}}
{{- if and (ne .service "user_service") (ne .service "journal") }}true{{ end -}}
{{- end -}}

{{/* The one port a process serves over HTTP: the gateway's API, a back-end's operator port; none. */}}
{{- define "pharmacy.port" -}}
{{- if eq .service "user_service" }}{{ .root.Values.gatewayPort }}{{ else if include "pharmacy.backend" . }}{{ .root.Values.metricsPort }}{{ end -}}
{{- end -}}

{{/* The RabbitMQ queues that hold a back-end service's work (contracts/topology.py). */}}
{{- define "pharmacy.queues" -}}
{{- $ns := .root.Values.platform.brokerNamespace -}}
{{- range $k := until (int .root.Values.platform.eventPartitions) }}
- {{ if eq $k 0 }}{{ printf "%s.%s.events" $ns $.service }}{{ else }}{{ printf "%s.%s.events.%d" $ns $.service $k }}{{ end }}
{{- end }}
- {{ printf "%s.%s.rpc" $ns .service }}
{{- end -}}
