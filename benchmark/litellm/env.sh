# Source this file (bash): environment for running the LiteLLM proxy offline from this lab dir.
LAB=${LAB:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
export LAB
export PATH=$LAB/venv/bin:$PATH
export LITELLM_LOCAL_MODEL_COST_MAP=True     # don't fetch the model price map from GitHub (else 3 retries w/ backoff at startup)

# --- Prisma, offline ---
export PRISMA_HOME_DIR=$LAB/prisma-home                    # prisma-client-py caches the npm-installed prisma CLI here
export PRISMA_NODEENV_CACHE_DIR=$LAB/prisma-home/nodeenv   # unused while a global `node` exists (PRISMA_USE_GLOBAL_NODE default)
export PRISMA_VERSION=5.17.0                               # CLI version (prisma-client-py 0.11.0 would default to 5.4.2)
export PRISMA_EXPECTED_ENGINE_VERSION=393aa359c9ad4a4bb28630fb5613f9c281cde053   # = @prisma/query-engine-wasm@5.17.0-31.<hash>
export PRISMA_QUERY_ENGINE_BINARY=$LAB/qe-shim/query-engine.mjs        # wasm-engine shim instead of the (undownloadable) native binary
export PRISMA_SCHEMA_ENGINE_BINARY=$LAB/qe-shim/schema-engine-stub.sh  # stub: answers --version only
export PRISMA_HIDE_UPDATE_MESSAGE=1 CHECKPOINT_DISABLE=1
export DISABLE_SCHEMA_UPDATE=true            # never run `prisma migrate deploy` at proxy start (schema is applied by apply_migrations.sh)
