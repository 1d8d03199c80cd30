# xcp-provision server image: Debian 12, installed by the same script as `make run`.
#
# ProxyDHCP and TFTP answer broadcast and UDP traffic on the racks' L2 network, so run it with
# host networking, and keep the data directory (inventory, releases, TFTP tree) on a volume:
#   docker run -d --name xcp-provision --network host \
#     -v /srv/xcp-provision:/var/lib/xcp-provision xcp-provision
FROM debian:12-slim

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    XCP_PROVISION_DATA_DIR=/var/lib/xcp-provision

WORKDIR /opt/xcp-provision
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN ./scripts/setup.sh runtime && rm -rf /var/lib/apt/lists/* /root/.cache

VOLUME ["/var/lib/xcp-provision"]
EXPOSE 8080/tcp 69/udp 67/udp 4011/udp
ENTRYPOINT ["/opt/xcp-provision/.venv/bin/xcp-provision"]
CMD ["serve", "--demo"]
