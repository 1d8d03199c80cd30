"""DHCP for network boot: ProxyDHCP beside a site's DHCP server, or full DHCP in a lab."""
