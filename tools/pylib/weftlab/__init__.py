# SPDX-License-Identifier: MIT
"""weftlab: dense weft nodes on one machine, and the simulated network
(docs/LAB.md). The package: cli (parser, main), commands (up, down, status,
run, top), scenarios (run NAME), stats (percentiles and completion figures,
shared with aria2), report, sim, aria2 (the BitTorrent comparison) and
completion (bash, from the parser); common holds the Lab and the control
API client. tools/weftlab runs it."""
