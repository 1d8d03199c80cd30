"""Lab runs too long for ``make test``: collected only when named on pytest's command line.

``test_lab_examples.py`` boots two VMs through two installs and two Xen boots under TCG (about
twenty minutes here); ``make e2e-examples`` runs the same lab through its command, and
``pytest tests/e2e/test_lab_examples.py`` runs this test.
"""

collect_ignore = ["test_lab_examples.py"]
