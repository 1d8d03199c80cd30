"""Power control of hosts through their baseboard management controllers (BMCs).

A host may have one BMC, reached by IPMI 2.0 over LAN (pyghmi) or by Redfish (sushy); the
drivers are small adapters over those libraries, never a protocol of our own. The service
(:mod:`pxe.bmc.service`) is what the API and the CLI call: it bounds every BMC call in time,
keeps power readings for a few seconds, and records each action as an event of the host.
Passwords are kept encrypted at rest with a key of the data directory (:mod:`pxe.bmc.secrets`).
"""
