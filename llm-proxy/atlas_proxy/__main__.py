"""``atlas-llm-proxy`` / ``python -m atlas_proxy``: serve llm-proxy (settings: atlas.conf, environment)."""

from atlas_core.serve import run_service
from atlas_proxy.app import create_app
from atlas_proxy.settings import Settings


def main() -> None:
    run_service("llm-proxy", Settings, create_app)


if __name__ == "__main__":
    main()
