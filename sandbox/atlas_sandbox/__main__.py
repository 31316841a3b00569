"""``atlas-sandbox`` / ``python -m atlas_sandbox``: serve sandbox (settings: atlas.conf, environment)."""

from atlas_core.serve import run_service
from atlas_sandbox.app import create_app
from atlas_sandbox.settings import Settings


def main() -> None:
    run_service("sandbox", Settings, create_app)


if __name__ == "__main__":
    main()
