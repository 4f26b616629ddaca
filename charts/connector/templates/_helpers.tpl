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

{{/*
The config file's text: a string is used verbatim, a map is rendered as YAML. In a map,
a `shard: true` rate input without a start gets the release's schedule start (the pod's
CONNECTOR_SCHEDULE_START): every shard must count its share from the same moment.
*/}}
{{- define "connector.configText" -}}
{{- if kindIs "string" .Values.config }}
{{- .Values.config }}
{{- else }}
{{- $config := deepCopy .Values.config }}
{{- range $input := $config.input | default list }}
{{- if and (kindIs "map" $input) (kindIs "map" $input.rate) }}
{{- if and $input.rate.shard (not (hasKey $input.rate "start")) }}
{{- $_ := set $input.rate "start" "${CONNECTOR_SCHEDULE_START}" }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}
{{- end }}

{{/* schedule.start, or the release time (UTC), as ISO-8601. */}}
{{- define "connector.scheduleStart" -}}
{{- .Values.schedule.start | default (dateInZone "2006-01-02T15:04:05Z" now "UTC") }}
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
{{- end }}
{{- include "connector.checkGrace" . }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (ge (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicas)) }}
{{- fail "podDisruptionBudget.minAvailable must be below replicas, or no pod can ever be evicted (node drains block)" }}
{{- end }}
{{- end }}

{{/*
The pod's grace period must outlast the connector's shutdown: from SIGTERM each output has
its flush_timeout (waiting for room and the final flush together), then the summary and
the close take a few seconds (graceMargin), and `--linger N` in extraArgs keeps /metrics up
N seconds more. Checked against every output of the rendered config, a map or a string.
*/}}
{{- define "connector.graceMargin" -}}5{{- end }}
{{- define "connector.checkGrace" -}}
{{- $config := .Values.config }}
{{- if kindIs "string" $config }}
{{- $config = fromYaml $config }}
{{- end }}
{{- if and (kindIs "map" $config) (not (hasKey $config "Error")) }}
{{- $grace := float64 .Values.terminationGracePeriodSeconds }}
{{- $margin := float64 (include "connector.graceMargin" .) }}
{{- $linger := 0.0 }}
{{- $previous := "" }}
{{- range .Values.extraArgs }}
{{- $arg := toString . }}
{{- if eq $previous "--linger" }}
{{- $linger = float64 $arg }}
{{- else if hasPrefix "--linger=" $arg }}
{{- $linger = float64 (trimPrefix "--linger=" $arg) }}
{{- end }}
{{- $previous = $arg }}
{{- end }}
{{- $outputs := $config.output | default (list (dict "stdout" dict)) }}
{{- if not (kindIs "slice" $outputs) }}
{{- $outputs = list }}
{{- end }}
{{- range $i, $entry := $outputs }}
{{- if kindIs "map" $entry }}
{{- range $plugin, $settings := $entry }}
{{- if ne $plugin "name" }}
{{- $flush := 30.0 }}
{{- if and (kindIs "map" $settings) (hasKey $settings "flush_timeout") }}
{{- $value := get $settings "flush_timeout" }}
{{- if not (or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value)) }}
{{- fail (printf "config output[%d].%s.flush_timeout is %v, not a number: the chart checks terminationGracePeriodSeconds against it, so write the number itself" $i $plugin $value) }}
{{- end }}
{{- $flush = float64 $value }}
{{- end }}
{{- $need := addf $flush $margin $linger }}
{{- if lt $grace $need }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be at least %v: output[%d].%s.flush_timeout (%v s) + %v s to print the summary and close%s; otherwise the pod is killed before its events are flushed or dead-lettered" $grace (ceil $need) $i $plugin $flush $margin (ternary (printf " + --linger %v s" $linger) "" (gt $linger 0.0))) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
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
        - name: CONNECTOR_SCHEDULE_START
          value: {{ include "connector.scheduleStart" . | quote }}
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
        {{- include "connector.secretEnv" . | nindent 8 }}
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
        {{- include "connector.tlsMount" . | nindent 8 }}
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
    {{- include "connector.tlsVolume" . | nindent 4 }}
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
