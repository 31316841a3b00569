"""``atlas-llm-proxy`` / ``python -m atlas_proxy``: serve llm-proxy (settings: atlas.conf, environment)."""

from atlas_core.serve import run_service
from atlas_proxy.app import create_app
from atlas_proxy.settings import Settings


def main() -> None:
    # No access log: at gateway rates it costs more than the request itself; every request is counted in
    # /metrics and recorded (without prompts) in the usage stream instead.
    run_service("llm-proxy", Settings, create_app, access_log=False)


if __name__ == "__main__":
    main()
