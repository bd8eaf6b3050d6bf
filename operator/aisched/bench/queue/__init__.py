"""`aisched bench queue`: how well the queue keeps submission order and the cluster full.

The burst (`scenario`): whole-node AIJobs that fill the cluster exactly, wave after wave, run
against the real operator once per queueing strategy (`run`); what the load saw becomes the
figures (`figures`): makespan against the waves back to back, overtakes of a blocked head,
half-bound gangs, GPUs given twice; `report` makes rows, JSON and a table of them.
"""

from aisched.bench.queue.figures import BurstFigures, burst_figures
from aisched.bench.queue.report import BurstRow, QueueBenchmark, QueueRow
from aisched.bench.queue.run import STRATEGIES, Strategy, parse_strategies, run_queue_benchmark
from aisched.bench.queue.scenario import Burst, BurstJob, aijob_manifest, burst

__all__ = [
    "STRATEGIES",
    "Burst",
    "BurstFigures",
    "BurstJob",
    "BurstRow",
    "QueueBenchmark",
    "QueueRow",
    "Strategy",
    "aijob_manifest",
    "burst",
    "burst_figures",
    "parse_strategies",
    "run_queue_benchmark",
]
