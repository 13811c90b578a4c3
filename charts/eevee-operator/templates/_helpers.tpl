{{- define "eevee.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "eevee.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "eevee.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "eevee.serviceAccountName" -}}
{{- default (include "eevee.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "eevee.tokenSecretName" -}}
{{- default (printf "%s-api-token" (include "eevee.fullname" .)) .Values.apiToken.existingSecret -}}
{{- end -}}

{{- define "eevee.allNamespaces" -}}
{{- if has "*" .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/* The namespaces to reconcile, as the operator reads WATCH_NAMESPACES. */}}
{{- define "eevee.watchNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- join "," .Values.watchNamespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* What the operator calls in every namespace it reconciles: checked against its real
     traffic by tests/charts/test_rbac.py. */}}
{{- define "eevee.reconcileRules" -}}
- apiGroups: ["eevee.bot"]
  resources: ["botmodules", "ipcconfigs", "s3stores", "backupschedules", "backuprestores"]
  verbs: ["list", "watch"]
- apiGroups: ["eevee.bot"]
  resources: ["botmodules/status", "ipcconfigs/status", "s3stores/status", "backupschedules/status", "backuprestores/status"]
  verbs: ["patch"]
# Setting ownerReferences with blockOwnerDeletion needs this where the
# OwnerReferencesPermissionEnforcement admission plugin is on.
- apiGroups: ["eevee.bot"]
  resources: ["botmodules/finalizers", "ipcconfigs/finalizers", "backuprestores/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Module backups: one CronJob per BotModule that names a BackupSchedule.
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Restores: one Job per BackupRestore, never deleted by the operator (its TTL does).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Never deleted by the shipped rules: token Secrets and module claims are kept.
- apiGroups: [""]
  resources: ["secrets", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# What the modules' Deployments run, watched (label-selected) and never written: what a module's
# Pod says goes into its status and the HTTP API.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list", "watch"]
{{- with .Values.rules.rbac }}
# For the kinds rule tables add (rules.extra / rules.override): rules.rbac.
{{ toYaml . }}
{{- end }}
{{- end -}}
