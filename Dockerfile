# cetcd images, built from this tree in a Debian 12 build stage:
#   docker build --target cetcd          -t cetcd:0.1.0 .           (server + cetcdctl)
#   docker build --target cetcd-operator -t cetcd-operator:0.1.0 .
# (`make image` runs both.) The runtime stages are debian:12-slim with only the shared libraries
# the binaries link (hack/check-dockerfile.sh checks the package lists against `ldd` offline),
# and run as the non-root user 10001, the uid the operator's pod security context expects.

# ---- build: the build dependencies of hack/deps.sh (compiler, pkg-config, -dev packages,
# protoc-c); no test, benchmark or Kubernetes tools.
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libcjson-dev libyaml-dev \
      libcurl4-openssl-dev libssl-dev liblmdb-dev libwebsockets-dev libcrypt-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" all

# ---- cetcd-operator: the Kubernetes operator (libcurl for the API, cJSON, libyaml for
# kubeconfig files, OpenSSL).
FROM debian:12-slim AS cetcd-operator
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libcurl4 libcjson1 libyaml-0-2 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cetcd \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cetcd
COPY --from=build /src/bin/cetcd-operator /usr/local/bin/cetcd-operator
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cetcd-operator"]

# ---- cetcd: the server and cetcdctl. Data lives in the volume /var/lib/cetcd (the operator
# mounts each member's claim there and sets ETCD_DATA_DIR=/var/lib/cetcd/data).
FROM debian:12-slim AS cetcd
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libnghttp2-14 libprotobuf-c1 libcjson1 libyaml-0-2 libcurl4 libssl3 liblmdb0 \
      libwebsockets17 libcrypt1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cetcd \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/cetcd \
      --shell /usr/sbin/nologin cetcd \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/cetcd
COPY --from=build /src/bin/cetcd /src/bin/cetcdctl /usr/local/bin/
ENV ETCD_DATA_DIR=/var/lib/cetcd/data
WORKDIR /var/lib/cetcd
USER 10001:10001
EXPOSE 2379 2380 2381
VOLUME /var/lib/cetcd
ENTRYPOINT ["/usr/local/bin/cetcd"]
