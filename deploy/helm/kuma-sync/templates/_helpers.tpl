{{/* Names and labels. */}}
{{- define "kuma-sync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kuma-sync.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kuma-sync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kuma-sync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kuma-sync.labels" -}}
{{ include "kuma-sync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "kuma-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kuma-sync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: the existing ServiceAccount to run as (serviceAccount.create is false)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* deploy/image.env's name and tag; the tag defaults to the chart's appVersion. */}}
{{- define "kuma-sync.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Where a Secret named N is mounted; the config's file paths point below it. */}}
{{- define "kuma-sync.secretsDir" -}}/etc/kuma-sync/secrets{{- end -}}

{{/* The file of key `ref.key` of Secret `ref.name`. Args: dict "ref" "what". */}}
{{- define "kuma-sync.secretFile" -}}
{{- $name := required (printf "%s.name: the Secret's name" .what) .ref.name -}}
{{- $key := required (printf "%s.key: the key in Secret %s" .what $name) .ref.key -}}
{{- printf "%s/%s/%s" (include "kuma-sync.secretsDir" .) $name $key -}}
{{- end -}}

{{/* One control plane's entry of the config file. Args: dict "cp" "what". */}}
{{- define "kuma-sync.controlPlane" -}}
{{- $cp := .cp | default dict -}}
{{- $what := .what -}}
{{- $out := dict -}}
{{- if and $cp.api $cp.kubernetes -}}
{{- fail (printf "%s: give either api or kubernetes, not both" $what) -}}
{{- end -}}
{{- with $cp.api -}}
{{- $url := required (printf "%s.api.url: the control plane's REST API (http:// or https://)" $what) .url -}}
{{- if not (regexMatch "^https?://[^/]+" $url) -}}
{{- fail (printf "%s.api.url %q must start with http:// or https:// and name a host" $what $url) -}}
{{- end -}}
{{- $api := dict "url" $url -}}
{{- with .tokenSecret -}}
{{- $_ := set $api "tokenFile" (include "kuma-sync.secretFile" (dict "ref" . "what" (printf "%s.api.tokenSecret" $what))) -}}
{{- end -}}
{{- with .caSecret -}}
{{- $_ := set $api "caFile" (include "kuma-sync.secretFile" (dict "ref" . "what" (printf "%s.api.caSecret" $what))) -}}
{{- end -}}
{{- $_ := set $out "api" $api -}}
{{- end -}}
{{- with $cp.kubernetes -}}
{{- $kube := dict -}}
{{- with .kubeconfigSecret -}}
{{- $_ := set $kube "kubeconfig" (include "kuma-sync.secretFile" (dict "ref" . "what" (printf "%s.kubernetes.kubeconfigSecret" $what))) -}}
{{- end -}}
{{- with .context -}}
{{- $_ := set $kube "context" . -}}
{{- end -}}
{{- $_ := set $out "kubernetes" $kube -}}
{{- end -}}
{{- with $cp.environment -}}
{{- $_ := set $out "environment" . -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The `kuma-sync serve` configuration file, from .Values.config. */}}
{{- define "kuma-sync.config" -}}
{{- $c := .Values.config -}}
{{- $cfg := dict "listen" ":9465" -}}
{{- $_ := set $cfg "global" (include "kuma-sync.controlPlane" (dict "cp" $c.global "what" "config.global") | fromYaml) -}}
{{- $zones := list -}}
{{- $seen := dict -}}
{{- range $i, $z := $c.zones -}}
{{- $name := required (printf "config.zones[%d].name: the zone's name as the global knows it" $i) $z.name -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" $name) -}}
{{- fail (printf "config.zones[%d].name %q is not a DNS label (lower case letters, digits, '-')" $i $name) -}}
{{- end -}}
{{- if hasKey $seen $name -}}
{{- fail (printf "config.zones: zone %q is listed twice" $name) -}}
{{- end -}}
{{- $_ := set $seen $name true -}}
{{- $zone := include "kuma-sync.controlPlane" (dict "cp" $z "what" (printf "config.zones[%d] (%s)" $i $name)) | fromYaml -}}
{{- $_ := set $zone "name" $name -}}
{{- $zones = append $zones $zone -}}
{{- end -}}
{{- if $zones -}}
{{- $_ := set $cfg "zones" $zones -}}
{{- end -}}
{{- with $c.kds -}}
{{- if .address -}}
{{- $kds := dict "address" .address -}}
{{- with .zoneName -}}
{{- if hasKey $seen . -}}
{{- fail (printf "config.kds.zoneName %q is a monitored zone's name; the probe must never connect as a real zone" .) -}}
{{- end -}}
{{- $_ := set $kds "zoneName" . -}}
{{- end -}}
{{- with .caSecret -}}
{{- $_ := set $kds "caFile" (include "kuma-sync.secretFile" (dict "ref" . "what" "config.kds.caSecret")) -}}
{{- end -}}
{{- if .skipVerify -}}
{{- $_ := set $kds "skipVerify" true -}}
{{- end -}}
{{- with .clientCertSecret -}}
{{- $_ := set $kds "clientCert" (include "kuma-sync.secretFile" (dict "ref" (dict "name" . "key" "tls.crt") "what" "config.kds.clientCertSecret")) -}}
{{- $_ := set $kds "clientKey" (include "kuma-sync.secretFile" (dict "ref" (dict "name" . "key" "tls.key") "what" "config.kds.clientCertSecret")) -}}
{{- end -}}
{{- $_ := set $cfg "kds" $kds -}}
{{- end -}}
{{- end -}}
{{- with $c.types -}}
{{- $_ := set $cfg "types" . -}}
{{- end -}}
{{- with $c.meshes -}}
{{- $_ := set $cfg "meshes" . -}}
{{- end -}}
{{- with $c.intervals -}}
{{- $intervals := dict -}}
{{- with .poll -}}
{{- $_ := set $intervals "poll" (toString .) -}}
{{- end -}}
{{- with .stallThreshold -}}
{{- $_ := set $intervals "stallThreshold" (toString .) -}}
{{- end -}}
{{- if $intervals -}}
{{- $_ := set $cfg "intervals" $intervals -}}
{{- end -}}
{{- end -}}
{{- with $c.systemNamespace -}}
{{- $_ := set $cfg "systemNamespace" . -}}
{{- end -}}
{{- with $c.kumaVersion -}}
{{- $_ := set $cfg "kumaVersion" (toString .) -}}
{{- end -}}
{{- with (dig "canary" "mesh" "" $c) -}}
{{- $_ := set $cfg "canary" (dict "mesh" . "interval" (toString (dig "canary" "interval" "60s" $c))) -}}
{{- end -}}
{{- $metrics := dict -}}
{{- with (dig "metrics" "tls" "secretName" "" $c) -}}
{{- $_ := set $metrics "tls" (dict "certFile" (include "kuma-sync.secretFile" (dict "ref" (dict "name" . "key" "tls.crt") "what" "config.metrics.tls.secretName")) "keyFile" (include "kuma-sync.secretFile" (dict "ref" (dict "name" . "key" "tls.key") "what" "config.metrics.tls.secretName"))) -}}
{{- end -}}
{{- $auth := dig "metrics" "basicAuth" dict $c -}}
{{- if $auth.username -}}
{{- $password := include "kuma-sync.secretFile" (dict "ref" (required "config.metrics.basicAuth.passwordSecret: { name, key } of the password (basicAuth.username is set)" $auth.passwordSecret) "what" "config.metrics.basicAuth.passwordSecret") -}}
{{- $_ := set $metrics "basicAuth" (dict "username" $auth.username "passwordFile" $password) -}}
{{- else if $auth.passwordSecret -}}
{{- fail "config.metrics.basicAuth.passwordSecret is set but basicAuth.username is empty" -}}
{{- end -}}
{{- if $metrics -}}
{{- $_ := set $cfg "metrics" $metrics -}}
{{- end -}}
{{- if include "kuma-sync.elects" . -}}
{{- /* The identity is each pod's HOSTNAME, its name. */ -}}
{{- $_ := set $cfg "leaderElection" (dict "namespace" .Release.Namespace "leaseName" (include "kuma-sync.fullname" .)) -}}
{{- end -}}
{{- if gt (int .Values.shards) 1 -}}
{{- /* No index: each pod is the shard its StatefulSet ordinal says (kuma-sync-2 is 2). */ -}}
{{- $shards := dict "total" (int .Values.shards) -}}
{{- if include "kuma-sync.elects" . -}}
{{- /* Pod N is a replica of shard N mod total; each shard's replicas elect their own leader. */ -}}
{{- $_ := set $shards "replicas" (int .Values.replicaCount) -}}
{{- end -}}
{{- $_ := set $cfg "shards" $shards -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The Secrets the config file points into, as a JSON list of names. */}}
{{- define "kuma-sync.mountedSecrets" -}}
{{- $prefix := printf "%s/" (include "kuma-sync.secretsDir" .) -}}
{{- $names := list -}}
{{- range regexFindAll (printf "%s[^/]+/" (regexQuoteMeta $prefix)) (include "kuma-sync.config" .) -1 -}}
{{- $names = append $names (trimSuffix "/" (trimPrefix $prefix .)) -}}
{{- end -}}
{{- toJson (uniq $names) -}}
{{- end -}}

{{/* Whether /metrics is served over TLS, and the scheme of the probes. */}}
{{- define "kuma-sync.scheme" -}}
{{- if (dig "metrics" "tls" "secretName" "" .Values.config) -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{/* Whether the replicas elect a leader: more than one. */}}
{{- define "kuma-sync.elects" -}}
{{- if gt (int .Values.replicaCount) 1 -}}true{{- end -}}
{{- end -}}

{{/* One shard runs as a Deployment; several as a StatefulSet, whose ordinals are their indexes. */}}
{{- define "kuma-sync.sharded" -}}
{{- if lt (int .Values.shards) 1 -}}
{{- fail (printf "shards %v: kuma-sync needs at least one shard" .Values.shards) -}}
{{- end -}}
{{- if gt (int .Values.shards) 1 -}}true{{- end -}}
{{- end -}}

{{/* Replicas (of each shard, when sharded) elect a leader on a Lease; the probe runs on one. */}}
{{- define "kuma-sync.checkReplicas" -}}
{{- if lt (int .Values.replicaCount) 1 -}}
{{- fail (printf "replicaCount %v: kuma-sync needs one replica (use helm uninstall to stop it)" .Values.replicaCount) -}}
{{- end -}}
{{- end -}}

{{/* The pod both workloads run: the Deployment (one shard) and the StatefulSet (shards). */}}
{{- define "kuma-sync.podTemplate" -}}
{{- $scheme := include "kuma-sync.scheme" . -}}
metadata:
  labels:
    {{- include "kuma-sync.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # A changed configuration rolls the pod.
    checksum/config: {{ include "kuma-sync.config" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "kuma-sync.serviceAccountName" . }}
  # The in-cluster Kubernetes source reads kuma.io resources with this token.
  automountServiceAccountToken: true
  enableServiceLinks: false
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
    - name: kuma-sync
      image: {{ include "kuma-sync.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --config
        - /etc/kuma-sync/kuma-sync.yaml
        - --log-format
        - {{ .Values.logFormat }}
      ports:
        - name: metrics
          containerPort: 9465
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
          scheme: {{ $scheme }}
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 6
      # Ready only after the first full read of every source.
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
          scheme: {{ $scheme }}
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 3
      startupProbe:
        httpGet:
          path: /healthz
          port: metrics
          scheme: {{ $scheme }}
        periodSeconds: 2
        failureThreshold: 30
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/kuma-sync/kuma-sync.yaml
          subPath: kuma-sync.yaml
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- range $i, $name := include "kuma-sync.mountedSecrets" . | fromJsonArray }}
        - name: secret-{{ $i }}
          mountPath: {{ include "kuma-sync.secretsDir" $ }}/{{ $name }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "kuma-sync.fullname" . }}-config
    - name: tmp
      emptyDir:
        sizeLimit: 16Mi
    # Optional: the release installs before the Secrets exist; a control plane whose
    # files are missing shows as unreadable (kuma_sync_up 0) until they appear.
    {{- range $i, $name := include "kuma-sync.mountedSecrets" . | fromJsonArray }}
    - name: secret-{{ $i }}
      secret:
        secretName: {{ $name }}
        optional: true
        defaultMode: 288 # 0440: owner and fsGroup may read
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
{{- end -}}
