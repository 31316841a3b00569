# The same commands locally and in CI: targets call scripts/, .ci/run calls `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help install up down status test lint typecheck unit docs bench-proxy bench-sandbox bench-solve bench-queue bench-dashboard bench-lens bench-router bench-retrieval chaos images check-llama-server

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## create .venv with every package, the tools and the default models (idempotent)
	@scripts/install.sh

up: install ## start the whole platform locally and print its URLs (atlas up)
	@$(BIN)/atlas up

down: ## stop everything `make up` started (atlas down)
	@$(BIN)/atlas down

status: ## show each service: pid, port, ready or not (atlas status)
	@$(BIN)/atlas status

test: install ## ruff, mypy --strict and the whole test suite (what CI runs)
	@scripts/test.sh

lint: install ## ruff only
	@$(BIN)/ruff check .

typecheck: install ## mypy --strict only
	@$(BIN)/mypy

unit: install ## the test suite without the slow end-to-end and install tests
	@$(BIN)/pytest -m "not e2e and not install"

docs: install ## regenerate the settings table in docs/configuration.md
	@$(BIN)/python scripts/update-config-docs.py

check-llama-server: install ## the overlays' llama-server command lines on a real llama-server (builds one on CPU first, ~10 min; JSON in bench-results/k8s-llama-check/)
	@scripts/k8s/check-llama-server.sh $(LLAMA_SERVER)

images: ## build every container image with docker, podman or buildah and list them (IMAGES_FLAGS=--push pushes)
	@scripts/images.sh $(IMAGES_FLAGS)

bench-proxy: install ## llm-proxy's added latency vs LiteLLM's proxy (JSON in bench-results/proxy.json)
	@benchmark/litellm/setup.sh
	@$(BIN)/python scripts/bench_proxy.py --out bench-results/proxy.json

bench-sandbox: install ## the sandbox's cost per run, throughput and a 1,000-test judge (JSON in bench-results/sandbox.json)
	@$(BIN)/python scripts/bench_sandbox.py --out bench-results/sandbox.json

bench-solve: install ## raw pass@1, pass@k and selected@1 on HumanEval and MBPP with the default model (JSON in bench-results/)
	@$(BIN)/python scripts/bench_solve.py --dataset humaneval --out bench-results/solve-humaneval.json
	@$(BIN)/python scripts/bench_solve.py --dataset mbpp --out bench-results/solve-mbpp.json

bench-queue: install ## task queue throughput and latency, 10,000 trivial tasks, 1-4 workers, vs RQ (JSON in bench-results/queue.json)
	@$(BIN)/python scripts/bench_queue.py --tasks 10000 --workers 1,2,4 --out bench-results/queue.json

bench-retrieval: install ## PageIndex on requests, click, httpx (+ starlette, jinja2 held out): recall@1/5/10 and MRR of BM25, embeddings, hybrid and tree search, index and re-index time, query latency (JSON in bench-results/retrieval.json)
	@$(BIN)/python scripts/bench_retrieval.py --out bench-results/retrieval.json

bench-dashboard: install ## the dashboard's first render with 24 h and 7 d of history, and the collector's CPU (JSON in bench-results/dashboard.json)
	@$(BIN)/python scripts/bench_dashboard.py --out bench-results/dashboard.json

bench-router: install ## the confidence router and pattern cache on a fresh running platform: warm-up on MBPP train, then HumanEval/MBPP test with fixed k and routed ablations (~2.5 h; JSON in bench-results/router.json)
	@scripts/bench-router.sh

bench-lens: install ## the Geometric Lens on the running platform: bootstrap, train, ablations, AUC and first-pick gain (~2 h; JSON in bench-results/lens.json)
	@scripts/bench-lens.sh

chaos: install ## kill each service, restart Redis, stall the model under load; check nothing is lost (~12 min, JSON in bench-results/chaos.json)
	@$(BIN)/python scripts/chaos.py --out bench-results/chaos.json
