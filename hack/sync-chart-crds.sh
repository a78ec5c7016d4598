#!/usr/bin/env bash
# Copies the generated CRDs into the Helm chart's templates, wrapped in the
# chart's crds.enabled/crds.keep switches. Never edit the chart copies by hand.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/charts/userve/templates/crds"
[ -d "$root/charts/userve" ] || exit 0
mkdir -p "$out"
for f in "$root"/config/crd/bases/*.yaml; do
	{
		echo '{{- if .Values.crds.enabled }}'
		# Insert the keep annotation right under metadata:.
		awk '
			/^metadata:$/ && !done { print; print "  annotations:"; print "    {{- if .Values.crds.keep }}"; print "    helm.sh/resource-policy: keep"; print "    {{- end }}"; inmeta=1; next }
			inmeta && /^  annotations:$/ { inmeta=0; done=1; next }
			{ if (inmeta && !/^  /) { inmeta=0; done=1 } print }
		' "$f"
		echo '{{- end }}'
	} >"$out/$(basename "$f")"
done
