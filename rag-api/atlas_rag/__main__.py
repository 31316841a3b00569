"""``atlas-rag-api`` / ``python -m atlas_rag``: serve rag-api (settings: atlas.conf, environment)."""

from atlas_core.serve import run_service
from atlas_rag.app import create_app
from atlas_rag.settings import Settings


def main() -> None:
    run_service("rag-api", Settings, create_app)


if __name__ == "__main__":
    main()
