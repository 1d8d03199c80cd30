"""The provisioning server: inventory, HTTP boot and API, TFTP, ProxyDHCP, registration, DNS."""
