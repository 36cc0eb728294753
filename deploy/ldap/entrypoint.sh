#!/bin/sh
# Write slapd.conf with the admin password (hashed), load the directory on first start
# (the phonebook account gets KWS_LDAP_PHONEBOOK_PASSWORD), then run slapd in the
# foreground as openldap. The passwords come from the environment, never from the image.
set -eu

: "${KWS_LDAP_ADMIN_PASSWORD:?set KWS_LDAP_ADMIN_PASSWORD}"
: "${KWS_LDAP_PHONEBOOK_PASSWORD:?set KWS_LDAP_PHONEBOOK_PASSWORD}"

SRC=/etc/ldap/kws
CONF=/run/slapd/slapd.conf
ROOTPW=$(slappasswd -s "$KWS_LDAP_ADMIN_PASSWORD")
sed "s|@ROOTPW@|$ROOTPW|" "$SRC/slapd.conf" > "$CONF"
chown openldap:openldap "$CONF" && chmod 0600 "$CONF"

if [ -z "$(ls -A /var/lib/ldap 2>/dev/null)" ]; then
    echo "ldap: loading the directory"
    READER=$(slappasswd -s "$KWS_LDAP_PHONEBOOK_PASSWORD")
    sed "s|@PHONEBOOK_PASSWORD@|$READER|" "$SRC/directory.ldif" \
        | slapadd -q -f "$CONF"
    chown -R openldap:openldap /var/lib/ldap
fi

exec slapd -d 0 -f "$CONF" -h "ldap:///" -u openldap -g openldap
