{{/* Names and labels shared by every template. */}}

{{- define "sparkbook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sparkbook.fullname" -}}
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

{{/* Selector and full labels of one component: include with (list $ "<component>"). */}}
{{- define "sparkbook.componentSelectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "sparkbook.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "sparkbook.componentLabels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sparkbook.componentSelectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: sparkbook
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end }}

{{- define "sparkbook.selectorLabels" -}}
{{ include "sparkbook.componentSelectorLabels" (list . "operator") }}
{{- end }}

{{- define "sparkbook.labels" -}}
{{ include "sparkbook.componentLabels" (list . "operator") }}
{{- end }}

{{- define "sparkbook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sparkbook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sparkbook.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The operator's API permissions, derived from what the code does (see the chart README for the
table; tests/static/test_chart.py compares them with the requests the operator really makes).
Used by the ClusterRole (cluster-wide install) and by the Role in each watched namespace.
No wildcards, and never `escalate`, `bind` or `impersonate`.
*/}}
{{- define "sparkbook.namespacedRules" -}}
# The custom resources: the operator's informers list and watch them; the operator creates and server-side-applies
# the SparkSession a NotebookServer owns (`get` after a 409 on create), and merge-patches the
# culled-at / idle-suspended-at annotations. After a resource's children are deleted, it `get`s the
# resource itself: a lagging watch must not make it re-create the children of a deleted one.
- apiGroups: ["sparkbook.io"]
  resources: ["sparksessions"]
  verbs: ["create", "get", "list", "patch", "watch"]
- apiGroups: ["sparkbook.io"]
  resources: ["notebookservers"]
  verbs: ["get", "list", "patch", "watch"]
# Status is written through the status subresource only.
- apiGroups: ["sparkbook.io"]
  resources: ["sparksessions/status", "notebookservers/status"]
  verbs: ["patch"]
# Children carry a controller ownerReference with blockOwnerDeletion: true. Where the
# OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift, hardened clusters),
# setting it needs `update` on the owner's finalizers subresource; no request uses it otherwise.
- apiGroups: ["sparkbook.io"]
  resources: ["sparksessions/finalizers", "notebookservers/finalizers"]
  verbs: ["update"]
# Pods: the informers watch drivers, executors and notebook pods; the operator creates and deletes
# driver pods. get, patch and deletecollection are never called by the operator itself: the
# operator creates a Role for each Spark driver granting exactly these verbs (Spark creates and
# deletes its executors), and Kubernetes RBAC escalation prevention only lets it grant
# permissions it holds. Holding them is the least-privilege alternative to the `escalate` verb.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["create", "delete", "deletecollection", "get", "list", "patch", "watch"]
# Services, ConfigMaps, PVCs: watched, created, server-side applied (patch), read after a 409
# on create. delete and deletecollection are held only because the driver Role grants them
# (escalation prevention, as for pods); the operator never deletes these (ownerReferences do).
- apiGroups: [""]
  resources: ["configmaps", "persistentvolumeclaims", "services"]
  verbs: ["create", "delete", "deletecollection", "get", "list", "patch", "watch"]
# The driver's ServiceAccount: watched, created, applied, read after a 409 on create.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["create", "get", "list", "patch", "watch"]
# Token Secrets (Spark Connect and Jupyter): created once and never rewritten (no patch); get
# reads a notebook's token to ask its Jupyter server for activity (idle culling).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "get", "list", "watch"]
# The driver's Role and RoleBinding: watched, created, applied, read after a 409 on create.
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["create", "get", "list", "patch", "watch"]
# The notebook server's StatefulSet.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["create", "get", "list", "patch", "watch"]
# One NetworkPolicy per SparkSession and per NotebookServer.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["create", "get", "list", "patch", "watch"]
# Events on SparkSessions and NotebookServers (the operator's own and kopf's warnings): POST only.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
The cluster-scoped NotebookProfiles: listed and watched (the informer), their status patched.
*/}}
{{- define "sparkbook.profileRules" -}}
- apiGroups: ["sparkbook.io"]
  resources: ["notebookprofiles"]
  verbs: ["list", "watch"]
- apiGroups: ["sparkbook.io"]
  resources: ["notebookprofiles/status"]
  verbs: ["patch"]
{{- end }}

{{/* The History Server's objects: <fullname>-history (within 63 characters). */}}
{{- define "sparkbook.historyName" -}}
{{- printf "%s-history" (include "sparkbook.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "sparkbook.historySelectorLabels" -}}
{{ include "sparkbook.componentSelectorLabels" (list . "history-server") }}
{{- end }}

{{- define "sparkbook.historyLabels" -}}
{{ include "sparkbook.componentLabels" (list . "history-server") }}
{{- end }}

{{/*
Refuse event-log and History Server values that cannot work, with a message that says what to
set. Included by the operator's Deployment, which every render has.
*/}}
{{- define "sparkbook.checkEventLog" -}}
{{- $log := .Values.eventLog }}
{{- if and $log.persistentVolumeClaim $log.url }}
{{- fail "eventLog: set persistentVolumeClaim or url, not both (event logs go to one place)" }}
{{- end }}
{{- if and $log.enabled (not (or $log.persistentVolumeClaim $log.url)) }}
{{- fail "eventLog.enabled=true needs eventLog.persistentVolumeClaim or eventLog.url: where the drivers write their event logs" }}
{{- end }}
{{- if and .Values.historyServer.enabled (not (or $log.persistentVolumeClaim $log.url)) }}
{{- fail "historyServer.enabled=true needs eventLog.persistentVolumeClaim or eventLog.url: where the History Server reads the event logs" }}
{{- end }}
{{- end }}

{{/* The History Server URL the operator advertises; empty when there is none. */}}
{{- define "sparkbook.historyURL" -}}
{{- if .Values.historyServer.url }}
{{- .Values.historyServer.url | trimSuffix "/" }}
{{- else if .Values.historyServer.enabled }}
{{- printf "http://%s.%s.svc:18080" (include "sparkbook.historyName" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* history.conf: the History Server's properties (hashed into its pod's annotations). */}}
{{- define "sparkbook.historyConf" -}}
{{- $hs := .Values.historyServer -}}
spark.history.fs.logDirectory={{ ternary "file:///spark-events" .Values.eventLog.url (ne .Values.eventLog.persistentVolumeClaim "") }}
spark.history.ui.port=18080
spark.history.fs.update.interval={{ $hs.updateInterval }}
spark.history.retainedApplications={{ int $hs.retainedApplications }}
spark.history.fs.cleaner.enabled={{ $hs.cleaner.enabled }}
{{- if $hs.cleaner.enabled }}
spark.history.fs.cleaner.maxAge={{ $hs.cleaner.maxAge }}
{{- if gt (int $hs.cleaner.maxNumFiles) 0 }}
spark.history.fs.cleaner.maxNum={{ int $hs.cleaner.maxNumFiles }}
{{- end }}
{{- end }}
{{- range $key, $value := $hs.sparkConf }}
{{ $key }}={{ $value }}
{{- end }}
{{- end }}

{{/*
jmx-exporter.yaml: the Prometheus JMX exporter agent's config (historyServer.metrics). Spark's
History Server registers no MBeans of its own, so this keeps the JVM's: memory and its pools,
garbage collection, threads, class loading, the process (CPU, file descriptors) and uptime.
*/}}
{{- define "sparkbook.historyJmxConfig" -}}
lowercaseOutputName: true
lowercaseOutputLabelNames: true
includeObjectNames:
  - "java.lang:type=Memory"
  - "java.lang:type=MemoryPool,*"
  - "java.lang:type=GarbageCollector,*"
  - "java.lang:type=Threading"
  - "java.lang:type=ClassLoading"
  - "java.lang:type=OperatingSystem"
  - "java.lang:type=Runtime"
rules:
  - pattern: ".*"
{{- end }}

{{/* SPARK_DAEMON_JAVA_OPTS of the History Server: the metrics agent, then historyServer.javaOpts. */}}
{{- define "sparkbook.historyJavaOpts" -}}
{{- $hs := .Values.historyServer -}}
{{- $opts := list -}}
{{- if $hs.metrics.enabled -}}
{{- $opts = append $opts (printf "-javaagent:%s=%d:/etc/spark-history/jmx-exporter.yaml" $hs.metrics.javaagentJar (int $hs.metrics.port)) -}}
{{- end -}}
{{- with $hs.javaOpts -}}
{{- $opts = append $opts . -}}
{{- end -}}
{{- join " " $opts -}}
{{- end }}
