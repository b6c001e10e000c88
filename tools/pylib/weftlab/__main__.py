# SPDX-License-Identifier: MIT
"""`python3 -m weftlab`: what tools/weftlab runs, and how weftlab runs
itself again inside a lab namespace (common.child)."""
import sys

from .cli import main

sys.exit(main())
