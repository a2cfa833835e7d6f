#!/usr/bin/env bash
# Set up the vmlib course and either open it in JupyterLab or run the test suite.
#
#   ./setup.sh lab  [jupyter lab args...]   e.g. ./setup.sh lab --no-browser --port 8899
#   ./setup.sh test [pytest args...]        e.g. ./setup.sh test -x -k gup   (-n 0: one process)
#   ./setup.sh env                          set up only
#
# What set-up does: creates .venv (python3 >= 3.10), installs the project with the
# extras the verb needs, at the versions locked in constraints.txt (skipped while
# pyproject.toml and constraints.txt are unchanged and the extras are there):
# `lab` only the student set (course, plus render = pygraphviz when Graphviz's `dot` is
# missing), `test` and `env` everything (course, grading, test, render). It installs
# Graphviz (the vma and physical-memory graphs), for `test` and `env` also bubblewrap (the
# sandbox that grading runs student code in) and Debian's chromium, with apt-get when it
# can: as root, or through sudo when sudo needs no password. Otherwise it prints the
# command to run and goes on; the tests that need those tools then skip (or fail when CI
# is set). `lab` hides nbgrader's instructor panels unless the grading extra was asked for.
#
# Environment knobs:
#   PYTHON=/path/to/python3.X   the interpreter to build .venv from
#   SETUP_DRY_RUN=1             do the set-up, then print the final command instead of running it
#   SETUP_VENV_ONLY=1           skip apt-get and slide vendoring (venv only)
#   SETUP_EXTRAS=course,grading the extras `lab` installs (instructors: keeps nbgrader's panels)
#   SETUP_UNLOCKED=1            install the newest versions pyproject.toml allows, not the lock
#   SETUP_LOCK=FILE, SETUP_VENV=DIR   another lock or venv (the tests use them)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="${SETUP_VENV:-$ROOT/.venv}"   # SETUP_VENV: another venv (the tests use one outside the checkout)
STAMP="$VENV/.setup-stamp"
ALL_EXTRAS="course,grading,test,render"
STUDENT_EXTRAS="course"
EXTRAS="$ALL_EXTRAS"   # what this run needs; main() narrows it for `lab`
STUDENT_CONFIG="$ROOT/tools/student-jupyter"   # Jupyter config that hides nbgrader's panels
LOCK="${SETUP_LOCK:-constraints.txt}"   # the versions every install uses (tools/constraints.py; Python 3.10-3.13)
TESTED_PYTHONS="3.10 to 3.13"
START_NOTEBOOK="course/00_start_here.ipynb"

say() { printf '==> %s\n' "$*"; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die() { printf '==> ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<'EOF'
usage: ./setup.sh lab  [jupyter lab args...]   set up, then open the course in JupyterLab
       ./setup.sh test [pytest args...]        set up, then run the whole test suite
       ./setup.sh env                          set up only
EOF
}

# --- python and the venv -----------------------------------------------------------

python_ok() {  # python_ok CMD: true when CMD runs and is Python >= 3.10
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1
}

find_python() {  # print the first usable interpreter, or nothing
    local c
    for c in ${PYTHON:-} python3 python3.13 python3.12 python3.11 python3.10; do
        if command -v "$c" >/dev/null 2>&1 && python_ok "$c"; then
            command -v "$c"
            return 0
        fi
    done
}

create_venv() {  # create .venv, explaining what to do when python3 or venv is missing
    local py
    py="$(find_python)"
    if [ -z "$py" ]; then
        die "no Python >= 3.10 found (tried \$PYTHON, python3, python3.13 .. python3.10).
    Debian/Ubuntu: sudo apt-get install python3 python3-venv
    macOS:         brew install python@3.12
    Windows:       use WSL, or install Python from python.org
    Or point PYTHON at one: PYTHON=/path/to/python3.12 ./setup.sh ..."
    fi
    say "creating venv ${VENV#"$ROOT/"} with $py ($("$py" -V 2>&1))"
    local err
    err="$(mktemp)"
    if ! "$py" -m venv "$VENV" 2>"$err"; then
        rm -rf "$VENV"
        if grep -q -i "ensurepip" "$err" && can_apt; then
            say "installing python3-venv via apt-get (python3 -m venv needs it on Debian)"
            apt_install python3-venv
            "$py" -m venv "$VENV" || die "python3 -m venv still fails after installing python3-venv"
        else
            cat "$err" >&2
            rm -f "$err"
            die "'$py -m venv' failed. On Debian/Ubuntu install the venv module:
    sudo apt-get install python3-venv      (or python3.X-venv matching '$py -V')
then run this script again."
        fi
    fi
    rm -f "$err"
}

venv_key() {  # the hash of pyproject.toml and the lock, and the venv's Python: the stamp holds while they do
    printf '%s %s' "$("$VENV/bin/python" -c 'import hashlib
print(hashlib.sha256(open("pyproject.toml", "rb").read() + open("'"$LOCK"'", "rb").read()).hexdigest())')" \
        "$("$VENV/bin/python" -V 2>&1 | tr ' ' '-')"
}

stamped_extras() {  # the extras the stamp records for KEY (nothing when the stamp is stale)
    local key="$1" hash py extras
    [ -f "$STAMP" ] || return 0
    read -r hash extras py <"$STAMP" || true
    if [ "$hash $py" = "$key" ]; then
        printf '%s' "$extras"
    fi
}

has_extras() {  # has_extras HAVE WANT: true when every extra in the comma list WANT is in HAVE
    local rest="$2," e   # a string walk, not an array: macOS's bash 3.2 under set -u
    while [ -n "$rest" ]; do
        e="${rest%%,*}"
        rest="${rest#*,}"
        [ -z "$e" ] && continue
        case ",$1," in *",$e,"*) ;; *) return 1 ;; esac
    done
    return 0
}

ensure_venv() {  # create .venv if needed and pip install the project unless the stamp matches
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
        rm -rf "$VENV"
        create_venv
    fi
    local key have
    key="$(venv_key)"
    have="$(stamped_extras "$key")"
    if has_extras "$have" "$EXTRAS"; then
        say "venv up to date (pyproject.toml and $LOCK unchanged; extras $have)"
        return 0
    fi
    pip_install_locked
    local hash py
    read -r hash py <<<"$key"
    local e all="$EXTRAS" rest="$have,"   # the stamp records what is installed: old and new extras
    while [ -n "$rest" ]; do
        e="${rest%%,*}"
        rest="${rest#*,}"
        [ -z "$e" ] || has_extras "$all" "$e" || all="$all,$e"
    done
    printf '%s %s %s\n' "$hash" "$all" "$py" >"$STAMP"
}

pip_install_locked() {  # pip install the project with EXTRAS, pinned by the lock unless SETUP_UNLOCKED
    local lock="-c $LOCK" log="$VENV/pip-install.log" py   # a string, not an array: bash 3.2 under set -u
    if [ -n "${SETUP_UNLOCKED:-}" ]; then
        lock=""
        say "SETUP_UNLOCKED set: installing the newest versions pyproject.toml allows, not $LOCK"
    fi
    say "installing the project into .venv: pip install ${lock:+$lock }-e '.[$EXTRAS]'"
    # shellcheck disable=SC2086  # $lock is empty or two words
    if "$VENV/bin/python" -m pip install --disable-pip-version-check -q $lock -e ".[$EXTRAS]" >"$log" 2>&1; then
        return 0
    fi
    py="$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
    if grep -q -E "ResolutionImpossible|No matching distribution|requires a different Python" "$log"; then
        die "Python $py cannot install the locked versions ($LOCK, made for Python $TESTED_PYTHONS): use Python 3.12, e.g. rm -rf ${VENV#"$ROOT/"}; PYTHON=python3.12 ./setup.sh ${VERB:-lab}   (pip's output: $log)"
    fi
    tail -n 20 "$log" >&2
    die "pip install failed (above; all of it in $log). Check the network to PyPI, then run again."
}

# --- system packages ---------------------------------------------------------------

SUDO=""
APT_UPDATED=""

can_apt() {  # true when apt-get exists and we are root or have password-less sudo
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$(id -u)" = 0 ]; then
        SUDO=""
        return 0
    fi
    if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        SUDO="sudo -n"
        return 0
    fi
    return 1
}

apt_install() {  # apt_install PKG...: apt-get update once, then install; log shown on failure
    local log rc=0
    log="$(mktemp)"
    if [ -z "$APT_UPDATED" ]; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 || rc=$?
        APT_UPDATED=1
    fi
    if [ "$rc" = 0 ]; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$log" 2>&1 || rc=$?
    fi
    if [ "$rc" != 0 ]; then
        tail -n 20 "$log" >&2
    fi
    rm -f "$log"
    return "$rc"
}

need_system_tool() {  # need_system_tool BINARY DEBIAN_PACKAGE HUMAN_NAME BREW_NAME [WITHOUT_IT]
    local bin="$1" pkg="$2" name="$3" brew="$4"
    local without="${5:-the tests needing $name skip (or fail under CI)}"
    if command -v "$bin" >/dev/null 2>&1; then
        return 0
    fi
    if can_apt; then
        say "installing $name via apt-get ($pkg)"
        if apt_install "$pkg"; then
            return 0
        fi
        warn "apt-get install $pkg failed; until it is installed $without"
        return 0
    fi
    if command -v apt-get >/dev/null 2>&1; then
        warn "$name ($bin) is missing and I cannot install it without a password. Run:
    sudo apt-get install -y $pkg
then run this script again. Until then $without."
    else
        warn "$name ($bin) is missing. Install it with your package manager, e.g.:
    brew install $brew        (macOS)
Until then $without."
    fi
}

find_chromium() {  # true when a Chromium binary the browser tests can use exists
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

system_setup() {  # install the non-Python tools VERB needs
    local verb="$1"
    if [ -n "${SETUP_VENV_ONLY:-}" ]; then
        say "SETUP_VENV_ONLY set: skipping system packages"
        return 0
    fi
    if [ "$verb" = lab ]; then   # a student needs Graphviz only, and has pygraphviz without it
        need_system_tool dot graphviz "Graphviz" graphviz \
            "the vma and physical-memory graphs are drawn by pygraphviz (extra 'render') instead"
        return 0
    fi
    need_system_tool dot graphviz "Graphviz" graphviz
    if [ "$(uname -s)" = Linux ]; then
        need_system_tool bwrap bubblewrap "bubblewrap (the grading sandbox)" bubblewrap
    fi
    if [ "$verb" = test ] && ! find_chromium; then
        need_system_tool chromium chromium "Chromium (browser tests)" "--cask chromium"
    fi
}

# --- the verbs ---------------------------------------------------------------------

write_lab_overrides() {  # switch off JupyterLab's news and update pop-up in this venv
    local dir="$VENV/share/jupyter/lab/settings"
    mkdir -p "$dir"
    cp "$ROOT/tools/lab-overrides.json" "$dir/overrides.json"
    say "wrote JupyterLab settings overrides (no news/update pop-up)"
}

check_widgets() {  # make sure ipywidgets and its JupyterLab extension are in the venv
    local ext="$VENV/share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager"
    if "$VENV/bin/python" -c 'import ipywidgets, jupyterlab_widgets' >/dev/null 2>&1 && [ -d "$ext" ]; then
        return 0
    fi
    say "repairing ipywidgets (reinstalling ipywidgets and jupyterlab_widgets)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --force-reinstall \
        --no-deps ipywidgets jupyterlab_widgets widgetsnbextension
}

run() {  # run CMD...: run it (exec it when RUN_EXEC is set), or only print it under SETUP_DRY_RUN
    if [ -n "${SETUP_DRY_RUN:-}" ]; then
        printf 'would run:'
        printf ' %q' "$@"
        printf '\n'
        return 0
    fi
    if [ -n "${RUN_EXEC:-}" ]; then
        exec "$@"
    fi
    "$@"
}

hide_instructor_panels() {  # students: nbgrader's lab panels and server extensions off for this run
    if has_extras "$EXTRAS" grading; then
        return 0
    fi
    export JUPYTER_CONFIG_PATH="$STUDENT_CONFIG${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
    say "student set: nbgrader's instructor panels hidden (JUPYTER_CONFIG_PATH=$JUPYTER_CONFIG_PATH)"
}

verb_lab() {  # open the course in JupyterLab (main() did the system set-up)
    write_lab_overrides
    check_widgets
    hide_instructor_panels
    export JUPYTER_PATH="$VENV/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
    local opts=(--ServerApp.root_dir="$ROOT") RUN_EXEC=1   # exec: Ctrl-C and kill reach jupyter
    if [ "$(id -u)" = 0 ]; then
        opts+=(--allow-root)   # Jupyter refuses root without it (a fresh Debian box or container)
    fi
    if [ -f "$START_NOTEBOOK" ]; then
        say "starting JupyterLab on $START_NOTEBOOK"
        run "$VENV/bin/jupyter" lab "${opts[@]}" "$START_NOTEBOOK" "$@"
    else
        say "$START_NOTEBOOK not found; starting JupyterLab on course/"
        run "$VENV/bin/jupyter" lab "${opts[@]}" --LabApp.default_url=/lab/tree/course "$@"
    fi
}

# The suite runs in two processes (pytest-xdist), each test file whole in one of them, the
# longest first (tests/conftest.py); arguments after these override them, e.g. -n 0 for one process.
PYTEST_PARALLEL="-n 2 --dist loadfile --no-loadscope-reorder"

verb_test() {  # set up and run the whole test suite; pytest's "no tests collected" is a failure
    system_setup test
    if [ -z "${SETUP_VENV_ONLY:-}" ] && [ -f tools/slides-vendor.sh ]; then
        say "vendoring offline slide assets (tools/slides-vendor.sh)"
        bash tools/slides-vendor.sh || warn "tools/slides-vendor.sh failed (see above); the slide tests will say what is missing"
    fi
    export JUPYTER_PATH="$VENV/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
    say "running the test suite"
    local rc=0
    # shellcheck disable=SC2086  # PYTEST_PARALLEL is a list of words
    run "$VENV/bin/python" -m pytest $PYTEST_PARALLEL "$@" || rc=$?
    if [ "$rc" = 5 ]; then
        printf '==> ERROR: pytest collected no tests (exit 5); counting that as a failure\n' >&2
        exit 1
    fi
    exit "$rc"
}

check_extras() {  # refuse a SETUP_EXTRAS that lab cannot use, before anything is installed
    if ! has_extras "$ALL_EXTRAS" "$EXTRAS" || ! has_extras "$EXTRAS" course; then
        die "SETUP_EXTRAS='$EXTRAS': give a comma-separated list of $ALL_EXTRAS that includes course,
    e.g. SETUP_EXTRAS=course,grading ./setup.sh lab   (instructors: keeps nbgrader's panels)"
    fi
}

main() {
    local verb="${1:-}"
    VERB="$verb"
    case "$verb" in
        lab) shift; EXTRAS="${SETUP_EXTRAS:-$STUDENT_EXTRAS}"; check_extras
             system_setup lab
             if ! command -v dot >/dev/null 2>&1 && ! has_extras "$EXTRAS" render; then
                 say "no Graphviz 'dot': adding the in-process renderer (extra 'render', pygraphviz)"
                 EXTRAS="$EXTRAS,render"
             fi ;;
        test | env) shift ;;
        -h | --help | help) usage; exit 0 ;;
        "") usage >&2; exit 2 ;;
        *) usage >&2; die "unknown command '$verb': use lab, test or env" ;;
    esac
    ensure_venv
    case "$verb" in
        lab) verb_lab "$@" ;;
        test) verb_test "$@" ;;
        env) system_setup test; say "set-up done" ;;
    esac
}

main "$@"
