"""``atlas-api-portal`` / ``python -m atlas_portal``: serve api-portal with settings from atlas.conf and the environment."""

from atlas_core.serve import run_service

from atlas_portal.app import create_app
from atlas_portal.settings import Settings


def main() -> None:
    run_service("api-portal", Settings, create_app)


if __name__ == "__main__":
    main()
