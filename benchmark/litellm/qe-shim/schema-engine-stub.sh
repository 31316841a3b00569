#!/bin/sh
# Stub for Prisma's native schema-engine (not downloadable offline). Answers --version only;
# any real schema-engine work (migrate deploy/diff, db push) fails loudly.
case "$1" in
  --version|-V) echo "schema-engine-cli 393aa359c9ad4a4bb28630fb5613f9c281cde053"; exit 0;;
esac
echo "schema-engine stub: native Prisma schema engine is not available offline; apply migrations with psql instead" >&2
exit 1
