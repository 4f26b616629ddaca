{{/* Secured clusters: credentials from existing Secrets as environment variables (the
config reads them as ${VAR}), and TLS material mounted from an existing Secret. The chart
never holds a secret's value, so nothing secret reaches the ConfigMap. */}}

{{- define "connector.secretEnv" -}}
{{- range .Values.secrets }}
- name: {{ required "secrets[].env: the variable the config reads" .env }}
  valueFrom:
    secretKeyRef:
      name: {{ required "secrets[].existingSecret: the Secret's name" .existingSecret }}
      key: {{ required "secrets[].key: the key in the Secret" .key }}
{{- end }}
{{- if .Values.tls.existingSecret }}
- name: CONNECTOR_TLS_DIR
  value: {{ .Values.tls.mountPath | quote }}
{{- end }}
{{- end }}

{{- define "connector.tlsMount" -}}
{{- if .Values.tls.existingSecret }}
- name: tls
  mountPath: {{ .Values.tls.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "connector.tlsVolume" -}}
{{- if .Values.tls.existingSecret }}
- name: tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
    defaultMode: {{ .Values.tls.defaultMode | int }}
{{- end }}
{{- end }}
