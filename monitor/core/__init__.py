"""The ground floor every package may use: clock, errors, AWS clients (``aws``) and the fault
contract (``faults``), secrets, name resolution (``resolve``), per-target state (``state``),
the outage ledger (``outages``) and the cluster tags (``clusters``).

Nothing here imports checks/, recover/ or the rest of monitor/ (tests/unit/test_layers.py).
"""
