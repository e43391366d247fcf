"""The documented ranges of every number and time a scenario file or an API body may carry.

A value outside its range is refused where it enters (a scenario file: one line naming the file, line and
field, exit code 2; the API: a 422 naming the field), so that no later step overflows, divides by zero or
plans for a thousand years. The ranges are wide — far beyond any real fleet or job — and are listed in
``docs/guide/scenario.md`` ("Ranges").
"""

from __future__ import annotations

from datetime import UTC, datetime

# instants: every time (time range, job arrival and deadline, events, power-cap steps)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive

# power and energy
MAX_POWER_MW = 100_000.0  # a site's cap, an event's limit or baseline (100 GW: beyond any campus)
MAX_RAMP_MW_PER_MIN = 100_000.0
MAX_BOARD_POWER_W = 100_000.0  # one accelerator's (or replica's) power, W
MAX_PRICE_USD_PER_MWH = 1_000_000.0  # |price|; market caps are a few thousand
MAX_CARBON_G_PER_KWH = 10_000.0  # coal is ~1,000

# counts
MAX_ACCELERATORS = 10_000_000  # one pool
MAX_GANG = 1_000_000  # accelerators one job may use
MAX_PRIORITY = 1_000_000_000  # |priority| (stored as int32)
MAX_SEED = 2**63 - 1

# work and time spans
MIN_WORK_ACC_H = 1e-6  # 3.6 ms of one accelerator
MAX_WORK_ACC_H = 1e10  # 10 billion accelerator-hours
MAX_THROUGHPUT = 1_000.0  # relative to the reference type
MAX_OVERHEAD_S = 7 * 86_400.0  # checkpoint, restart
MAX_NOTICE_S = 366 * 86_400.0  # an event's notice
MAX_RESPOND_S = 86_400.0  # an emergency's response time
MAX_DATA_MOVE_GB = 1e9
MAX_LENGTH_H = 1e6  # generated job lengths, h (clipping at it clips nothing real)
MAX_LOAD_SCALE = 1e6
MAX_LATENCY_MS = 1e6
MAX_REQUESTS_PER_S = 1e9
