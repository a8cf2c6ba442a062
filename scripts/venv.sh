# Sourced by scripts/test, scripts/serve-example and scripts/build-dist: the project-local
# virtual environment they all run in. Nothing here installs into, or upgrades, a global
# Python: Debian's own python3 refuses that (PEP 668), and it would change what other programs
# on the machine run.
#
#   PYTHON=python3   the interpreter to build the environment from (any 3.11+)
#   VENV=.venv       where the environment lives; reused while it was made from that PYTHON
#
# When PYTHON is itself inside a virtual environment, that environment is used as it is.

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

say() { printf '== %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        fail "this needs root: run as root, or install sudo (command: $*)"
    fi
}

# Debian's python3 has no ensurepip (so no `python3 -m venv`) until python3.X-venv is installed.
install_debian_venv_package() {
    local version=$1
    command -v apt-get >/dev/null 2>&1 \
        || fail "$PYTHON cannot create a virtual environment (no ensurepip); install its venv module"
    say "installing Debian's python$version-venv (python3 -m venv needs it)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "python$version-venv" >/dev/null
}

# use_venv: sets PY to the python of a virtual environment made from $PYTHON (creating it or
# making it anew when $PYTHON changed), and puts its bin/ first on PATH.
use_venv() {
    command -v "$PYTHON" >/dev/null 2>&1 || fail "no Python named '$PYTHON' (set PYTHON=...)"
    local about
    about=$("$PYTHON" -c 'import sys
if sys.version_info < (3, 11):
    sys.exit("fcgikit needs Python 3.11 or newer; this is " + sys.version.split()[0])
print("%d.%d" % sys.version_info[:2], sys.prefix != sys.base_prefix, sys.executable, sys.version)
') || fail "$PYTHON cannot run fcgikit (see above)"
    local version=${about%% *} rest=${about#* }
    local in_venv=${rest%% *} identity=${rest#* }
    if [ "$in_venv" = True ]; then
        PY=$("$PYTHON" -c 'import sys; print(sys.executable)')
        say "using the virtual environment of $PY"
    else
        case $VENV in
            /*) PY="$VENV/bin/python" ;;
            *) PY="$PWD/$VENV/bin/python" ;;
        esac
        if [ ! -x "$PY" ] || [ "$(cat "$VENV/.made-from" 2>/dev/null)" != "$identity" ]; then
            [ -e "$VENV/bin" ] && say "$VENV was made from another Python: making it anew"
            rm -rf "$VENV"
            say "creating $VENV from $PYTHON (Python $version)"
            if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
                rm -rf "$VENV"
                install_debian_venv_package "$version"
                "$PYTHON" -m venv "$VENV" || fail "could not create $VENV with $PYTHON"
            fi
            printf '%s\n' "$identity" > "$VENV/.made-from"
        fi
    fi
    PATH="$(dirname "$PY"):$PATH"
    export PATH
}

# fresh_venv DIR: a new virtual environment in DIR from $PYTHON's base interpreter (even when
# $PYTHON is itself in a virtual environment); sets PY and PATH as use_venv does.
fresh_venv() {
    local base
    base=$("$PYTHON" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))') \
        || fail "no Python named '$PYTHON' (set PYTHON=...)"
    PYTHON=$base VENV=$1 use_venv
}

# What an install of fcgikit from this checkout depends on: when none of it changed, the
# environment is current and pip is not run again.
source_stamp() {
    {
        printf '%s\n' "$PWD"
        cat pyproject.toml setup.py
        find fcgikit -type f \( -name '*.py' -o -name '*.c' -o -name '*.pyi' \) | LC_ALL=C sort \
            | xargs cat
    } | sha256sum | cut -d' ' -f1
}

# install_editable SPEC [REQUIREMENT...]: pip install -e SPEC plus the requirements, unless this
# very source is installed already with them (or with '.[dev]', which has everything). An
# editable install compiles the accelerator next to the sources (setup.py), so after a change
# to the sources it is installed again.
install_editable() {
    local request="$*" env_dir marker stamp
    env_dir=$(dirname "$(dirname "$PY")")
    marker="$env_dir/.fcgikit-installed"
    stamp=$(source_stamp)
    if [ "$(sed -n 1p "$marker" 2>/dev/null)" = "$stamp" ] && installed_from_here; then
        case $(sed -n 2p "$marker") in
            "$request" | ".[dev]")
                say "fcgikit from this checkout is installed and current in $env_dir"
                return ;;
        esac
    fi
    say "installing fcgikit from this checkout into $env_dir (pip install -e $request)"
    say "that compiles the accelerator (mypyc, then C): a minute or two, with little output"
    "$PY" -m pip install --quiet --disable-pip-version-check -e "$@" \
        || fail "pip could not install fcgikit (its messages are above)"
    installed_from_here || fail "fcgikit was installed, but $PY does not import it from $PWD"
    printf '%s\n%s\n' "$stamp" "$request" > "$marker"
}

# True when the environment imports fcgikit from this checkout. Asked from / so that the
# current directory (the checkout itself) is not on sys.path and cannot answer for it.
installed_from_here() {
    local found
    found=$(cd / && "$PY" -c 'import fcgikit; print(fcgikit.__file__)' 2>/dev/null) || return 1
    [ "$found" = "$PWD/fcgikit/__init__.py" ]
}
