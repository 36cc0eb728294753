# The PBX of docker-compose.yml: Kamailio 5.6 (Debian bookworm's package) as a
# plain SIP registrar. The configuration is mounted from deploy/kamailio/.
FROM debian:bookworm-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        kamailio kamailio-sqlite-modules sqlite3 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/kamailio /var/run/kamailio \
    && chown kamailio:kamailio /var/lib/kamailio /var/run/kamailio

COPY pbx-entrypoint.sh /usr/local/bin/pbx-entrypoint
RUN chmod 0755 /usr/local/bin/pbx-entrypoint

VOLUME ["/var/lib/kamailio"]
USER kamailio
EXPOSE 5060/udp 5060/tcp
ENTRYPOINT ["/usr/local/bin/pbx-entrypoint"]
