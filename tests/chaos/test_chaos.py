"""`make chaos` (SEED, STEPS): the disaster fuzzer, a seeded run of the state machine of
machine.py through the real `lifeboat` binary. `make test` runs a short one.

STEPS is the total number of steps; they are split into examples of CHAOS_EXAMPLE_STEPS steps
(default 40), each on a freshly reset local AWS. A failing run prints its seed, Hypothesis's
shrunk sequence, and the same sequence as a literal for tests/chaos/test_regressions.py.
"""

import math
import os
import time

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.stateful import run_state_machine_as_test

import machine

SEED = int(os.environ.get("CHAOS_SEED", "18"))
STEPS = int(os.environ.get("CHAOS_STEPS", "30"))
PER_EXAMPLE = min(STEPS, int(os.environ.get("CHAOS_EXAMPLE_STEPS", "40")))
SHRINK = os.environ.get("CHAOS_SHRINK", "1") != "0"


def test_chaos(lab):
    # Hypothesis draws each example's length (up to PER_EXAMPLE) and starts with small ones; the
    # machine counts the steps it really runs and turns examples into no-ops past STEPS.
    machine.BUDGET[0] = STEPS
    machine.STATS.update(steps=0, failing=False, replaying=False, mix={})
    examples = STEPS
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else [])
    config = settings(max_examples=examples, stateful_step_count=PER_EXAMPLE, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=phases, print_blob=False,
                      report_multiple_bugs=False)
    start = time.time()

    @seed(SEED)
    def run():
        run_state_machine_as_test(machine.ChaosMachine, settings=config)

    try:
        run()
    except BaseException:
        print(f"\nchaos: FAILED with SEED={SEED} STEPS={STEPS} (examples of {PER_EXAMPLE} steps); "
              f"reproduce: make chaos SEED={SEED} STEPS={STEPS}")
        print("chaos: the shrunk sequence, for tests/chaos/test_regressions.py:")
        print("STEPS_SEED_%d = [" % SEED)
        print(f"# {machine.FAILED_ERROR[0] if machine.FAILED_ERROR else ''}")
        for name, kwargs in machine.FAILED_TRACE or machine.LAST_TRACE:
            print(f"    ({name!r}, {kwargs!r}),")
        print("]")
        raise
    finally:
        s = machine.STATS
        print(f"\nchaos: SEED={SEED} STEPS={STEPS}: {s['examples']} example(s), {s['steps']} steps run "
              f"(shrinking included), {s['refusals']} clean refusals, known bugs hit {s['known_bugs'] or 'none'}, "
              f"{time.time() - start:.0f} s")
        print("chaos: steps by rule: " + ", ".join(f"{k} {v}" for k, v in sorted(s["mix"].items())))
