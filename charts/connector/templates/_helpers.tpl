{{/* The folder that holds config.yaml and the scripts; the image's default CMD reads it. */}}
{{- define "connector.configDir" -}}/etc/connector{{- end }}
{{- define "connector.configPath" -}}{{ include "connector.configDir" . }}/config.yaml{{- end }}

{{- define "connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "connector.fullname" -}}
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

{{- define "connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "connector.labels" -}}
helm.sh/chart: {{ include "connector.chart" . }}
{{ include "connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "connector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The config file's text: a string is used verbatim, a map is rendered as YAML. */}}
{{- define "connector.configText" -}}
{{- if kindIs "string" .Values.config }}
{{- .Values.config }}
{{- else }}
{{- toYaml .Values.config }}
{{- end }}
{{- end }}

{{/* The scripts as YAML: .Values.scripts, or the chart's example when it is empty. */}}
{{- define "connector.scripts" -}}
{{- toYaml (.Values.scripts | default (dict "produce.py" (.Files.Get "files/produce.py"))) }}
{{- end }}

{{/*
Checks that fail the render with a message saying what to change, for mistakes that
would otherwise only show in a running cluster.
*/}}
{{- define "connector.checks" -}}
{{- $text := include "connector.configText" . }}
{{- if .Values.secretGuard }}
{{- range $i, $line := splitList "\n" $text }}
{{- if and (regexMatch "(?i)^[\\s-]*[\"']?[a-z0-9_.-]*(password|passwd|secret|token|authorization|api[_.-]?key)[\"']?\\s*:\\s*[^\\s#|>]" $line) (not (contains "${" $line)) }}
{{- fail (printf "config line %d looks like a literal secret (%s): put the value in a Secret, pass it with `env` (valueFrom.secretKeyRef) and write ${VAR} in the config; set secretGuard=false if it is not a secret" (add1 $i) (regexReplaceAll ":.*" (trim $line) ": ...")) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (not (kindIs "invalid" .Values.seed)) (gt (int .Values.replicas) 1) (not .Values.sharding.enabled) }}
{{- fail "seed with replicas > 1 needs sharding.enabled: a Deployment's pods have no index, so every replica would emit the same stream" }}
{{- end }}
{{- $scripts := include "connector.scripts" . | fromYaml }}
{{- range $name, $_ := $scripts }}
{{- if eq $name "config.yaml" }}
{{- fail "scripts: 'config.yaml' is the config's own file name in /etc/connector; rename the script" }}
{{- end }}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" $name) }}
{{- fail (printf "scripts: '%s' is not a valid file name (letters, digits, '-', '_', '.')" $name) }}
{{- end }}
{{- end }}
{{- if kindIs "map" .Values.config }}
{{- $script := dig "event" "script" "path" "" .Values.config }}
{{- if and $script (not (hasPrefix "/" $script)) (not (hasKey $scripts $script)) }}
{{- fail (printf "config event.script.path '%s' is not among scripts (%s): add it under `scripts`" $script (keys $scripts | sortAlpha | join ", ")) }}
{{- end }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- range $i, $entry := (.Values.config.output | default list) }}
{{- if kindIs "map" $entry }}
{{- range $plugin, $settings := $entry }}
{{- if kindIs "map" $settings }}
{{- $flush := $settings.flush_timeout | default 30 | float64 }}
{{- if le (float64 $grace) $flush }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be above output[%d].%s.flush_timeout (%v s), or the pod is killed before its events are flushed" $grace $i $plugin $flush) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (ge (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicas)) }}
{{- fail "podDisruptionBudget.minAvailable must be below replicas, or no pod can ever be evicted (node drains block)" }}
{{- end }}
{{- end }}

{{/* `connector run` arguments; the image's ENTRYPOINT is `connector`. */}}
{{- define "connector.args" -}}
- run
- {{ include "connector.configPath" . }}
- --metrics-port
- {{ .Values.metrics.port | int | quote }}
- --log-level
- {{ .Values.log.level | quote }}
- --log-format
- {{ .Values.log.format | quote }}
{{- if not (kindIs "invalid" .Values.seed) }}
- --seed
- {{ .Values.seed | int64 | quote }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* The pod template shared by the Deployment and the StatefulSet. */}}
{{- define "connector.podTemplate" -}}
metadata:
  labels:
    {{- include "connector.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Rolls the pods when the config or a script changes.
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if .Values.metrics.scrapeAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ .Values.metrics.port | int | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "connector.serviceAccountName" . }}
  automountServiceAccountToken: false
  # No <SERVICE>_PORT variables: they could shadow the connector's own environment.
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds | int }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: connector
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        {{- include "connector.args" . | nindent 8 }}
      env:
        - name: CONNECTOR_REPLICAS
          value: {{ ternary (.Values.replicas | int) 1 .Values.sharding.enabled | quote }}
        {{- if .Values.sharding.enabled }}
        - name: CONNECTOR_REPLICA_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        {{- else }}
        - name: CONNECTOR_REPLICA_INDEX
          value: "0"
        {{- end }}
        {{- with .Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: metrics
          containerPort: {{ .Values.metrics.port | int }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        {{- toYaml .Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        {{- toYaml .Values.probes.readiness | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: {{ include "connector.configDir" . }}
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    # config.yaml and the scripts side by side, so `path: produce.py` resolves.
    - name: config
      projected:
        sources:
          - configMap:
              name: {{ include "connector.fullname" . }}
          - configMap:
              name: {{ include "connector.fullname" . }}-scripts
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range . }}
    {{- /* a constraint without labelSelector spreads this release's pods */}}
    - {{ toYaml (merge (deepCopy .) (dict "labelSelector" (dict "matchLabels" (include "connector.selectorLabels" $ | fromYaml)))) | indent 6 | trim }}
    {{- end }}
  {{- end }}
{{- end }}
