"""Lab runs too long for ``make test``: collected only when named on pytest's command line.

``test_lab_examples.py`` boots two VMs through two installs and two Xen boots under TCG (about
twenty minutes here); ``make e2e-examples`` runs the same lab through its command, and
``pytest tests/e2e/test_lab_examples.py`` runs this test. ``test_lab_ipv6.py`` is one install
and one Xen boot per way dom0 takes its IPv6 address (static, autoconf, DHCPv6) beyond what
``make test``'s lab already proves (about five minutes each); ``make e2e-ipv6`` runs one through
its command.
"""

collect_ignore = ["test_lab_examples.py", "test_lab_ipv6.py"]
