{{/* Names, labels and small shared snippets of the bedrock-gateway chart. */}}

{{- define "bgw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object-name prefix: the release name, plus the chart name unless the release already has it. */}}
{{- define "bgw.fullname" -}}
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

{{/* The names the operator and proxy agree on (the binaries' --release / --kube-* flags). */}}
{{- define "bgw.configMapName" -}}{{ include "bgw.fullname" . }}-config{{- end -}}
{{- define "bgw.credentialsSecretName" -}}{{ include "bgw.fullname" . }}-credentials{{- end -}}
{{- define "bgw.leaseName" -}}{{ include "bgw.fullname" . }}-operator{{- end -}}
{{- define "bgw.modelManagerRole" -}}{{ include "bgw.fullname" . }}-model-manager{{- end -}}
{{- define "bgw.operatorName" -}}{{ include "bgw.fullname" . }}-operator{{- end -}}
{{- define "bgw.proxyName" -}}{{ include "bgw.fullname" . }}-proxy{{- end -}}

{{- define "bgw.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "bgw.operatorName" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bgw.proxyServiceAccount" -}}
{{- if .Values.proxy.serviceAccount.create -}}
{{- default (include "bgw.proxyName" .) .Values.proxy.serviceAccount.name -}}
{{- else -}}
{{- required "proxy.serviceAccount.name is required when proxy.serviceAccount.create is false" .Values.proxy.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Namespaces the operator watches: the list, or the release namespace when it is empty. */}}
{{- define "bgw.watchNamespaces" -}}
{{- if .Values.operator.watch.namespaces -}}
{{- join "," (uniq .Values.operator.watch.namespaces) -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "bgw.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "bgw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: bedrock-gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component ("operator" or "proxy"): stable across upgrades. */}}
{{- define "bgw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bgw.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "bgw.componentLabels" -}}
{{ include "bgw.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image reference: repository, then @digest or :tag (default appVersion). */}}
{{- define "bgw.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The restricted Pod Security Standard, pod level. */}}
{{- define "bgw.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The restricted Pod Security Standard, container level. */}}
{{- define "bgw.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* topologySpreadConstraints with this component's selector filled in. */}}
{{- define "bgw.topologySpread" -}}
{{- $selector := dict "matchLabels" (include "bgw.selectorLabels" . | fromYaml) -}}
{{- $out := list -}}
{{- range .constraints }}
{{- $out = append $out (merge (dict "labelSelector" $selector) .) -}}
{{- end }}
{{- toYaml $out -}}
{{- end -}}
