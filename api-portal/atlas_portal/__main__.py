"""``atlas-api-portal`` / ``python -m atlas_portal``: serve api-portal (settings: atlas.conf, environment)."""

from atlas_core.serve import run_service
from atlas_portal.app import create_app
from atlas_portal.settings import Settings


def main() -> None:
    run_service("api-portal", Settings, create_app)


if __name__ == "__main__":
    main()
