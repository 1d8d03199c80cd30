"""Service functions over the inventory: what the API, the CLI and the boot path all call.

Each function takes an open SQLAlchemy session and leaves committing to the caller, so one
request or one CLI command is one transaction.
"""
