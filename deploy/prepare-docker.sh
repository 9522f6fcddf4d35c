#!/usr/bin/env bash
# Prepares Docker on a machine like the project's CI: Debian, root, no image registry, and no
# package index reachable from inside containers. On a machine with a normal Docker (one that can
# pull from Docker Hub) this script is not needed: `docker compose up --build` is enough.
#
#   deploy/prepare-docker.sh          install, start dockerd if none answers, build what is missing
#   deploy/prepare-docker.sh --stop   stop the dockerd this script started (by its recorded pid)
#
# Idempotent: each step checks first, and what it builds is kept between runs on the same machine
# (images in /var/lib/docker, wheels and the debootstrap tarball in $AUTHSCALE_DOCKER_CACHE).
#
# What it does, in order:
#   1. apt-get install docker.io docker-compose debootstrap when any is missing;
#   2. starts dockerd by hand (there is no systemd) when no engine answers, recording its pid;
#   3. builds a Debian bookworm base image with debootstrap, from the mirror in this machine's
#      apt sources, and `docker import`s it as local/debian:bookworm;
#   4. builds stand-ins for the upstream images that compose.yaml and deploy/Dockerfile name
#      (python, nginx, redis, and the monitoring profile's Prometheus and exporters), from
#      Debian's packages, and the load profile's Locust from locked wheels downloaded on the
#      host, under local names (authscale-standin/...) that never shadow an upstream image;
#      compose.yaml takes them through the AUTHSCALE_*_IMAGE variables, which the tests and
#      the lab set when the stand-ins exist (authscale.lab.compose.images);
#   5. downloads the locked wheels on the host into deploy/wheels, for the offline image build
#      (AUTHSCALE_BUILD_OFFLINE=1).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AUTHSCALE_DOCKER_CACHE:-/var/cache/authscale-docker}
PIDFILE=$CACHE/dockerd.pid
SUITE=bookworm
BASE_IMAGE=local/debian:$SUITE
# The stand-ins' local names, each beside the variable compose.yaml reads it from (that
# variable's default is the upstream image). Tagged with Debian's versions, which they hold;
# tests check this list against authscale.lab.compose.images.
AUTHSCALE_PYTHON_IMAGE=authscale-standin/python:3.11
AUTHSCALE_NGINX_IMAGE=authscale-standin/nginx:1.22
AUTHSCALE_REDIS_IMAGE=authscale-standin/redis:7.0
AUTHSCALE_PROMETHEUS_IMAGE=authscale-standin/prometheus:2.42
AUTHSCALE_NGINX_EXPORTER_IMAGE=authscale-standin/nginx-exporter:0.11
AUTHSCALE_REDIS_EXPORTER_IMAGE=authscale-standin/redis-exporter:1.45
AUTHSCALE_LOCUST_IMAGE=authscale-standin/locust:2.47

log() { printf 'prepare-docker: %s\n' "$*" >&2; }
elapsed() { printf '%ss' "$((SECONDS - $1))"; }

stop_dockerd() {
    if [[ ! -s $PIDFILE ]]; then
        log "no dockerd started by this script (no $PIDFILE)"
        return 0
    fi
    local pid
    pid=$(<"$PIDFILE")
    if kill -0 "$pid" 2>/dev/null && [[ $(ps -o comm= -p "$pid") == dockerd ]]; then
        log "stopping dockerd (pid $pid); it stops the containerd it started"
        kill -TERM "$pid"
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "dockerd $pid did not stop within 30s; sending SIGKILL"
            kill -KILL "$pid"
        fi
    fi
    rm -f "$PIDFILE"
}

install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 \
        || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    local started=$SECONDS
    log "installing ${missing[*]} with apt-get"
    apt-get update -qq
    # needrestart (where installed) has nothing to restart here and no terminal to ask on.
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq "${missing[@]}" \
        >/dev/null
    log "installed in $(elapsed "$started")"
}

start_dockerd() {
    if docker info >/dev/null 2>&1; then
        log "a Docker engine answers already"
        return 0
    fi
    mkdir -p "$CACHE"
    local started=$SECONDS
    log "starting dockerd by hand (log: $CACHE/dockerd.log)"
    # setsid: dockerd outlives this script in its own session; stop it with --stop (by pid).
    setsid dockerd >"$CACHE/dockerd.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 120); do
        if docker info >/dev/null 2>&1; then
            log "dockerd (pid $(<"$PIDFILE")) answers after $(elapsed "$started")"
            return 0
        fi
        if ! kill -0 "$(<"$PIDFILE")" 2>/dev/null; then
            log "dockerd exited; the end of its log:"
            tail -n 20 "$CACHE/dockerd.log" >&2
            return 1
        fi
        sleep 0.5
    done
    log "dockerd did not answer within 60s; see $CACHE/dockerd.log"
    return 1
}

# The first Debian mirror in this machine's apt sources (one-line or deb822 format) that serves
# the suite's main archive, so the base image comes from wherever this machine gets its packages.
debian_mirror() {
    local files=()
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for file in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $file ]] && files+=("$file")
    done
    ((${#files[@]})) || return 1
    awk -v suite="$SUITE" '
        /^[[:space:]]*#/ { next }
        # one-line format: deb [options] URI SUITE COMPONENTS...
        $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) { print $i; exit }
        }
        # deb822 format: a stanza of "Key: value" lines, stanzas separated by blank lines
        /^[[:space:]]*$/ { uris = ""; suites = ""; next }
        tolower($1) == "uris:" { uris = $2 }
        tolower($1) == "suites:" { suites = " " substr($0, index($0, ":") + 1) " " }
        uris != "" && suites ~ (" " suite " ") { print uris; exit }
    ' "${files[@]}"
}

build_base_image() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "$BASE_IMAGE exists"
        return 0
    fi
    local mirror started=$SECONDS
    mirror=$(debian_mirror) || true
    if [[ -z $mirror ]]; then
        log "found no Debian $SUITE mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/"
        return 1
    fi
    local tarball=$CACHE/debian-$SUITE-minbase.tar
    if [[ ! -s $tarball ]]; then
        log "debootstrap $SUITE from $mirror"
        local rootfs
        rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
        debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
            || { tail -n 20 "$CACHE/debootstrap.log" >&2; rm -rf "$rootfs"; return 1; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -cf "$tarball.partial" .
        mv "$tarball.partial" "$tarball"
        rm -rf "$rootfs"
    fi
    docker import "$tarball" "$BASE_IMAGE" >/dev/null
    log "$BASE_IMAGE built in $(elapsed "$started")"
}

# stand_in TAG [CONTEXT] <<Dockerfile: builds an image under a stand-in's local name, from
# Debian's packages in an empty build context, or in CONTEXT (a temporary directory holding the
# wheels the Dockerfile copies, removed afterwards).
stand_in() {
    local tag=$1 context=${2:-} started=$SECONDS
    if docker image inspect "$tag" >/dev/null 2>&1; then
        log "$tag exists"
        [[ -z $context ]] || rm -rf "$context"
        return 0
    fi
    local source="the locked wheels"
    if [[ -z $context ]]; then
        context=$(mktemp -d)
        source="Debian's packages"
    fi
    cat >"$context/Dockerfile"
    log "building the stand-in $tag from $source"
    local build_log=$CACHE/build-${tag//[:\/]/-}.log
    if ! docker build --network host -t "$tag" "$context" >"$build_log" 2>&1; then
        tail -n 20 "$build_log" >&2
        rm -rf "$context"
        return 1
    fi
    rm -rf "$context"
    log "$tag built in $(elapsed "$started")"
}

build_stand_ins() {
    # Debian's Python 3.11 refuses system-wide pip installs (PEP 668); the Dockerfile installs
    # into a venv, which works the same on the upstream image.
    stand_in "$AUTHSCALE_PYTHON_IMAGE" <<EOF
FROM $BASE_IMAGE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
EOF
    # nginx 1.22 here, 1.28 upstream: the gateway config uses nothing newer than 1.22. Nothing
    # else is added: the compose healthcheck needs only bash, as in the upstream image.
    stand_in "$AUTHSCALE_NGINX_IMAGE" <<EOF
FROM $BASE_IMAGE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        nginx ca-certificates \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/*
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
    # Redis 7.0 here, 7.2 upstream. /data belongs to uid 999 as in the upstream image, so a new
    # named volume mounted there is writable by the redis user compose.yaml runs as.
    stand_in "$AUTHSCALE_REDIS_IMAGE" <<EOF
FROM $BASE_IMAGE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir /data && chown 999:999 /data
WORKDIR /data
CMD ["redis-server"]
EOF
    # The monitoring profile (Prometheus 2.42 and exporters 0.11 and 1.45 here, newer
    # upstream). Each binary is linked where the upstream image keeps it, since compose.yaml
    # names it as the entrypoint; /prometheus belongs to nobody (65534) as upstream, and wget
    # is there for the healthcheck, as busybox's is in the upstream image.
    stand_in "$AUTHSCALE_PROMETHEUS_IMAGE" <<EOF
FROM $BASE_IMAGE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        prometheus wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus && chown 65534:65534 /prometheus
CMD ["prometheus"]
EOF
    stand_in "$AUTHSCALE_NGINX_EXPORTER_IMAGE" <<EOF
FROM $BASE_IMAGE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        prometheus-nginx-exporter \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s prometheus-nginx-exporter /usr/bin/nginx-prometheus-exporter
EOF
    stand_in "$AUTHSCALE_REDIS_EXPORTER_IMAGE" <<EOF
FROM $BASE_IMAGE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        prometheus-redis-exporter \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/prometheus-redis-exporter /redis_exporter
EOF
    build_locust_stand_in
}

# The load profile's Locust. Debian's python3-locust (2.12) lacks options the locustfile uses, so
# this one installs the version of the upstream image, hash-checked from
# deploy/locust-requirements.lock, into a venv on the Python stand-in: the wheels are downloaded
# on the host (nothing inside a build reaches the package index). Like the upstream image it
# runs `locust` as the user locust in /home/locust.
build_locust_stand_in() {
    if docker image inspect "$AUTHSCALE_LOCUST_IMAGE" >/dev/null 2>&1; then
        log "$AUTHSCALE_LOCUST_IMAGE exists"
        return 0
    fi
    local context python
    context=$(mktemp -d)
    python=$(host_python)
    cp "$REPO/deploy/locust-requirements.lock" "$context/"
    # Markers (win32-only packages, typing-extensions before Python 3.12) are evaluated by the
    # host's Python: Debian 12's 3.11 on the machines this script is for, as in the stand-in.
    "$python" -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
        --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 --platform any \
        -d "$context/wheels" -r "$context/locust-requirements.lock" \
        || { rm -rf "$context"; return 1; }
    # Two stages, so the wheels stay out of the final image's layers.
    stand_in "$AUTHSCALE_LOCUST_IMAGE" "$context" <<EOF
FROM $AUTHSCALE_PYTHON_IMAGE AS build
COPY locust-requirements.lock /tmp/
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/locust \
    && /opt/locust/bin/pip install -q --disable-pip-version-check --no-index \
        --find-links /tmp/wheels --require-hashes --only-binary=:all: --no-deps \
        -r /tmp/locust-requirements.lock

FROM $AUTHSCALE_PYTHON_IMAGE
COPY --from=build /opt/locust /opt/locust
RUN useradd --create-home locust
ENV PATH=/opt/locust/bin:\$PATH PYTHONUNBUFFERED=1
USER locust
WORKDIR /home/locust
ENTRYPOINT ["locust"]
EOF
}

# The host's pip, in a venv of our own: Debian's python3 may come without one, and refuses
# system-wide use.
host_python() {
    [[ -x $CACHE/pip-venv/bin/python ]] || python3 -m venv "$CACHE/pip-venv"
    printf '%s\n' "$CACHE/pip-venv/bin/python"
}

download_wheels() {
    local started=$SECONDS python
    python=$(host_python)
    mkdir -p "$CACHE/wheels" "$REPO/deploy/wheels"
    # Wheels for the image's platform (CPython 3.11, glibc x86_64), whatever the host runs; the
    # locks' hashes are checked here and again inside the build. pip evaluates environment
    # markers against the host's Python, not the target's, so they are dropped here: every
    # locked wheel is fetched (async-timeout, say, serves Debian's 3.11.2 but not 3.11.7).
    local unmarked
    unmarked=$(mktemp)
    sed 's/ ; [^\\]*\\$/ \\/' "$REPO/deploy/requirements.lock" \
        "$REPO/deploy/build-requirements.lock" >"$unmarked"
    "$python" -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
        --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 --platform any \
        -d "$CACHE/wheels" -r "$unmarked"
    rm -f "$unmarked"
    # Copy only the locked versions, so a stale cached wheel never reaches the build context.
    find "$REPO/deploy/wheels" -name '*.whl' -delete
    local name version
    shopt -s nocaseglob
    while read -r name version; do
        # Wheel names spell the project's "-", "_" and "." separators as "_".
        cp "$CACHE/wheels/${name//[-.]/_}-$version-"*.whl "$REPO/deploy/wheels/"
    done < <(sed -n 's/^\([A-Za-z0-9._-]*\)==\([^ ;\\]*\).*/\1 \2/p' \
        "$REPO/deploy/requirements.lock" "$REPO/deploy/build-requirements.lock")
    shopt -u nocaseglob
    log "$(find "$REPO/deploy/wheels" -name '*.whl' | wc -l) wheels in deploy/wheels" \
        "($(elapsed "$started"))"
}

main() {
    if [[ ${1:-} == --stop ]]; then
        stop_dockerd
        return 0
    fi
    if [[ $(id -u) != 0 ]]; then
        log "run as root: it installs packages and starts dockerd"
        return 1
    fi
    local started=$SECONDS
    mkdir -p "$CACHE"
    install_packages
    start_dockerd
    build_base_image
    build_stand_ins
    download_wheels
    # Rebuilds of authscale:local leave untagged images behind; a CI machine kept between runs
    # would otherwise fill up with them.
    docker image prune -f >/dev/null
    log "ready in $(elapsed "$started"); build offline with AUTHSCALE_BUILD_OFFLINE=1"
    log "compose by hand takes the stand-ins with these variables (or the same lines in .env):"
    printf '%s\n' \
        "AUTHSCALE_PYTHON_IMAGE=$AUTHSCALE_PYTHON_IMAGE" \
        "AUTHSCALE_NGINX_IMAGE=$AUTHSCALE_NGINX_IMAGE" \
        "AUTHSCALE_REDIS_IMAGE=$AUTHSCALE_REDIS_IMAGE" \
        "AUTHSCALE_PROMETHEUS_IMAGE=$AUTHSCALE_PROMETHEUS_IMAGE" \
        "AUTHSCALE_NGINX_EXPORTER_IMAGE=$AUTHSCALE_NGINX_EXPORTER_IMAGE" \
        "AUTHSCALE_REDIS_EXPORTER_IMAGE=$AUTHSCALE_REDIS_EXPORTER_IMAGE" \
        "AUTHSCALE_LOCUST_IMAGE=$AUTHSCALE_LOCUST_IMAGE" >&2
}

main "$@"
