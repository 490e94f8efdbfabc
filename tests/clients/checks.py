"""Runs the `check_*` functions of a client check module in name order, prints one line per
check and 'CLIENT: N passed, M failed', and exits non-zero on any failure (or on no checks)."""

import sys
import traceback


def run_checks(client_name, namespace):
    checks = [value for name, value in sorted(namespace.items()) if name.startswith("check_")]
    failed = 0
    for check in checks:
        try:
            check()
            print(f"ok      {check.__name__}")
        except Exception:
            failed += 1
            print(f"FAILED  {check.__name__}")
            traceback.print_exc()
    print(f"{client_name}: {len(checks) - failed} passed, {failed} failed")
    sys.exit(1 if failed or not checks else 0)
