# syntax=docker/dockerfile:1
# weft's image: a CUDA build stage, then a slim runtime stage that holds the
# two binaries, the cuBLAS libraries they link and the default model
# (docs/deploy.md). Everything comes from Debian's packages and PyPI
# (NVIDIA's CUDA wheels), the same two registries the project builds from.
#
#   docker build -t weft .
#   docker run --gpus all -p 50051:50051 -p 8000:8000 weft
#   docker run -p 50051:50051 -p 8000:8000 weft            # CPU: same image
#   docker run --gpus all -v $PWD/models:/models weft --model /models/x.gguf
#
# Build arguments:
#   CUDA_ARCHITECTURES  default "80;86;89;90a": A100, A10/RTX 30xx, L4/L40/RTX 40xx, H100/H200
#   WEFT_CUDA           ON (default) or OFF for a CPU-only image (no CUDA toolkit, no cuBLAS)
#   JOBS                parallel compile jobs (default: all cores; each nvcc job wants ~2 GiB)

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE} AS build
ARG WEFT_CUDA=ON
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# Debian stable's packages take only security fixes: no version pins.
# hadolint ignore=DL3008
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends python3 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Each step's inputs are copied just before it, so a source change rebuilds
# only the last layer.
COPY tools/install_cuda.sh tools/
RUN if [ "$WEFT_CUDA" != OFF ]; then tools/install_cuda.sh; fi
ENV PATH=/usr/local/cuda/bin:$PATH
COPY tools/setup.sh tools/
RUN tools/setup.sh deps && rm -rf /var/lib/apt/lists/*
COPY tools/fetch_model.sh tools/fetch_xgrammar.sh tools/
RUN tools/fetch_model.sh && tools/fetch_xgrammar.sh
COPY . .
ARG CUDA_ARCHITECTURES="80;86;89;90a"
ARG JOBS=""
ENV CCACHE_DIR=/root/.cache/ccache
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DWEFT_CUDA="$WEFT_CUDA" -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHITECTURES" \
      -DWEFT_BUILD_TESTS=OFF \
 && cmake --build build -j "${JOBS:-$(nproc)}" --target weft-server weft weft-generate
# What the runtime stage takes: the binaries and every library they load
# from the CUDA toolkit (cuBLAS, cuBLASLt; none in a CPU-only build).
RUN mkdir -p /out/bin /out/lib /out/models \
 && cp build/server/weft-server build/server/weft build/tools/weft-generate /out/bin/ \
 && { ldd /out/bin/* | awk '$3 ~ "^/usr/local/cuda" {print $3}' | sort -u \
        | xargs -r cp -L -t /out/lib/; } \
 && cp models/SmolLM2-135M-Instruct.Q4_1.gguf /out/models/

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The runtime halves of tools/setup.sh's -dev packages (gRPC pulls in
# protobuf, abseil, c-ares, re2, OpenSSL and zlib).
# hadolint ignore=DL3008
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libgrpc++1.51 libcpp-httplib0.11 libicu72 libxxhash0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 weft \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /opt/weft \
      --shell /usr/sbin/nologin weft
COPY --from=build /out/ /opt/weft/
RUN echo /opt/weft/lib > /etc/ld.so.conf.d/weft.conf && ldconfig \
 && ldd /opt/weft/bin/* | { ! grep 'not found'; }
# The NVIDIA container toolkit mounts the host's driver into the container
# when these are set (and with `docker run --gpus`); without a GPU weft-server
# serves on the CPU (--device auto).
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PATH=/opt/weft/bin:$PATH
WORKDIR /opt/weft
USER 10001:10001
# gRPC, then OpenAI-compatible HTTP.
EXPOSE 50051 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["weft", "health", "--server", "127.0.0.1:50051", "--timeout", "4"]
# weft-server drains on SIGTERM (health NOT_SERVING, in-flight requests get
# --drain_timeout, 30 s): give `docker stop` more than that (-t 40).
STOPSIGNAL SIGTERM
ENTRYPOINT ["weft-server"]
CMD ["--model", "models/SmolLM2-135M-Instruct.Q4_1.gguf"]
