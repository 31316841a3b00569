"""``atlas-dashboard`` / ``python -m atlas_dashboard``: serve dashboard (settings: atlas.conf, environment)."""

from atlas_core.serve import run_service
from atlas_dashboard.app import create_app
from atlas_dashboard.settings import Settings


def main() -> None:
    run_service("dashboard", Settings, create_app)


if __name__ == "__main__":
    main()
