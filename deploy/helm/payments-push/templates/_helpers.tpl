{{/* Names */}}
{{- define "pp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "pp.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "pp.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pp.core" -}}{{ include "pp.fullname" . | trunc 52 | trimSuffix "-" }}-core{{- end -}}
{{- define "pp.gateway" -}}{{ include "pp.fullname" . | trunc 52 | trimSuffix "-" }}-gateway{{- end -}}
{{- define "pp.provider" -}}{{ include "pp.fullname" . | trunc 52 | trimSuffix "-" }}-provider{{- end -}}
{{- define "pp.postgresql" -}}{{ include "pp.fullname" . | trunc 52 | trimSuffix "-" }}-postgresql{{- end -}}

{{- define "pp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels. Call with (dict "ctx" $ "component" "payment-core") */}}
{{- define "pp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pp.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "pp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{ include "pp.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: payments-push
{{- end -}}

{{/* Image of a service: (dict "ctx" $ "name" "payment-core") */}}
{{- define "pp.image" -}}
{{- $i := .ctx.Values.image -}}
{{- if $i.digest -}}
{{ printf "%s%s%s@%s" $i.registry $i.repositoryPrefix .name $i.digest }}
{{- else -}}
{{ printf "%s%s%s:%s" $i.registry $i.repositoryPrefix .name (default .ctx.Chart.AppVersion $i.tag) }}
{{- end -}}
{{- end -}}

{{/* Everything that must hold before anything is rendered. */}}
{{- define "pp.validate" -}}
{{- $v := .Values -}}
{{- if not $v.secrets.existingSecret -}}
{{- fail "secrets.existingSecret is required: the name of an existing Secret holding the credentials (provider_secret, payment_core_api_keys, database_url, admin_token, gateway_api_key, provider_api_key, postgres_password). Make one with: scripts/make-secrets.sh secrets && kubectl create secret generic payments-push --from-file=secrets/ (see the chart's README). The chart never takes a credential as a value." -}}
{{- end -}}
{{- if lt (int $v.core.replicas) 1 -}}
{{- fail "core.replicas must be at least 1 (2 or more for rolling updates without a gap)" -}}
{{- end -}}
{{- if hasKey $v "sqlite" -}}
{{- fail "SQLite is not offered by this chart: it serves one payment-core process and the cores run as replicas. Use postgresql.bundled=true (trials) or an external PostgreSQL (the Secret's database_url)." -}}
{{- end -}}
{{- if and $v.ingress.enabled $v.ingress.tls.enabled (not $v.ingress.tls.secretName) -}}
{{- fail "ingress.tls.secretName is required with ingress.tls.enabled: an existing kubernetes.io/tls Secret for ingress.host (or set ingress.tls.enabled=false)" -}}
{{- end -}}
{{- if and $v.tls.mutual (not $v.tls.enabled) -}}
{{- fail "tls.mutual=true needs tls.enabled=true" -}}
{{- end -}}
{{- if and $v.tls.enabled (not $v.tls.coreSecret) -}}
{{- fail "tls.enabled=true needs tls.coreSecret: an existing kubernetes.io/tls Secret with the core's certificate (tls.crt, tls.key) and its CA (ca.crt)" -}}
{{- end -}}
{{- if and $v.tls.mutual (not $v.tls.gatewayClientSecret) -}}
{{- fail "tls.mutual=true needs tls.gatewayClientSecret: the gateway's client certificate (tls.crt, tls.key) signed by the core's client CA" -}}
{{- end -}}
{{- if and $v.tls.mutual $v.provider.enabled (not $v.tls.providerClientSecret) -}}
{{- fail "tls.mutual=true with provider.enabled needs tls.providerClientSecret" -}}
{{- end -}}
{{- if and (eq $v.core.readinessProbe.type "grpc") $v.tls.enabled -}}
{{- fail "core.readinessProbe.type=grpc cannot speak TLS (the kubelet's gRPC probe is plaintext): use exec with tls.enabled" -}}
{{- end -}}
{{- if not (has $v.core.readinessProbe.type (list "exec" "grpc")) -}}
{{- fail "core.readinessProbe.type must be exec or grpc" -}}
{{- end -}}
{{- if not (has $v.antiAffinity (list "soft" "hard")) -}}
{{- fail "antiAffinity must be soft or hard" -}}
{{- end -}}
{{- if not (has $v.preStop.action (list "exec" "sleep")) -}}
{{- fail "preStop.action must be exec or sleep" -}}
{{- end -}}
{{- $credentials := list "PROVIDER_SECRET" "PAYMENT_CORE_API_KEYS" "PAYMENT_CORE_API_KEY" "DATABASE_URL" "ADMIN_TOKEN" "POSTGRES_PASSWORD" -}}
{{- range $component := list "core" "gateway" "provider" -}}
{{- range $name, $_ := (index $v $component).extraEnv -}}
{{- if has $name $credentials -}}
{{- fail (printf "%s.extraEnv.%s: credentials are never values of this chart; put it in secrets.existingSecret" $component $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "pp.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* preStop: (dict "ctx" $ "seconds" 10) */}}
{{- define "pp.preStop" -}}
preStop:
{{- if eq .ctx.Values.preStop.action "sleep" }}
  sleep:
    seconds: {{ .seconds }}
{{- else }}
  exec:
    command: ["/bin/sleep", "{{ .seconds }}"]
{{- end }}
{{- end -}}

{{/* terminationGracePeriodSeconds of a component's values */}}
{{- define "pp.grace" -}}
{{- if gt (int .terminationGracePeriodSeconds) 0 -}}
{{ .terminationGracePeriodSeconds }}
{{- else -}}
{{ add .preStopSleepSecs .shutdownGraceSecs .terminationMarginSecs }}
{{- end -}}
{{- end -}}

{{/* Spread a component's pods over nodes: (dict "ctx" $ "component" "sse-gateway") */}}
{{- define "pp.affinity" -}}
podAntiAffinity:
{{- if eq .ctx.Values.antiAffinity "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "pp.selectorLabels" . | nindent 10 }}
{{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "pp.selectorLabels" . | nindent 12 }}
{{- end }}
{{- end -}}

{{/* The core's gRPC URL, as its clients use it */}}
{{- define "pp.coreUrl" -}}
{{ if .Values.tls.enabled }}https{{ else }}http{{ end }}://{{ include "pp.core" . }}.{{ .Release.Namespace }}.svc:{{ .Values.core.grpcPort }}
{{- end -}}

{{- define "pp.coreDomain" -}}
{{ default (printf "%s.%s.svc" (include "pp.core" .) .Release.Namespace) .Values.tls.coreDomain }}
{{- end -}}

{{/* Client-side TLS env of a payment-core client: (dict "ctx" $ ) */}}
{{- define "pp.clientTlsEnv" -}}
{{- if .ctx.Values.tls.enabled }}
- name: PAYMENT_CORE_CA_FILE
  value: /run/tls/core-ca/ca.crt
- name: PAYMENT_CORE_TLS_DOMAIN
  value: {{ include "pp.coreDomain" .ctx | quote }}
{{- if .ctx.Values.tls.mutual }}
- name: PAYMENT_CORE_CLIENT_CERT_FILE
  value: /run/tls/client/tls.crt
- name: PAYMENT_CORE_CLIENT_KEY_FILE
  value: /run/tls/client/tls.key
{{- end }}
{{- end }}
{{- end -}}

{{/* Client-side TLS mounts: (dict "ctx" $) */}}
{{- define "pp.clientTlsMounts" -}}
{{- if .ctx.Values.tls.enabled }}
- name: core-ca
  mountPath: /run/tls/core-ca
  readOnly: true
{{- if .ctx.Values.tls.mutual }}
- name: client-tls
  mountPath: /run/tls/client
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{/* Client-side TLS volumes: (dict "ctx" $ "clientSecret" "name") */}}
{{- define "pp.clientTlsVolumes" -}}
{{- if .ctx.Values.tls.enabled }}
- name: core-ca
  secret:
    secretName: {{ .ctx.Values.tls.coreSecret }}
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
{{- if .ctx.Values.tls.mutual }}
- name: client-tls
  secret:
    secretName: {{ .clientSecret }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}
{{- end -}}

{{- define "pp.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{- define "pp.commonEnv" -}}
- name: PAYMENTS_PUSH_DEV
  value: "0"
- name: LOG_FORMAT
  value: {{ .component.logFormat | quote }}
- name: RUST_LOG
  value: {{ .component.rustLog | quote }}
- name: SHUTDOWN_GRACE_SECS
  value: {{ .component.shutdownGraceSecs | quote }}
{{- with .ctx.Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* DNS, and the extra egress rules, for every pod */}}
{{- define "pp.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.networkPolicy.dnsNamespace }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- with .Values.networkPolicy.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end -}}
