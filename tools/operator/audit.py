"""`make audit STATE=<file>`: the policy pack over a `pulumi stack export`, offline.

Prints one line per violation, never a value; exit 0 when no mandatory
violation, 1 when there is one, 2 when the file cannot be read.
"""

import sys

from mlops_policies.audit import main

if __name__ == "__main__":
    sys.exit(main())
