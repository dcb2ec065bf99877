"""Write the sample cassettes of ``samples/cassettes/`` again, from the simulator.

Run ``python -m tests.replay.make_sample_cassettes`` from the repository root
after a change of the cassette format or the simulator; ``test_samples`` in
this package replays them. Not a test module (pytest does not collect it).
"""

from __future__ import annotations

from payprotocol.simulator import FaultPlan, Simulator, SimulatorConfig

from .sessions import APPROVED_SAMPLE, CASSETTES, approved_signature_charge, unknown_then_lookup


def main() -> None:
    CASSETTES.mkdir(parents=True, exist_ok=True)
    with Simulator(SimulatorConfig(step_delay=0.01)) as sim:
        approved = approved_signature_charge(sim.tcp_url, record=APPROVED_SAMPLE)
        print(APPROVED_SAMPLE, approved.status)
    with Simulator(SimulatorConfig(step_delay=0.01)) as sim:
        from .sessions import UNKNOWN_SAMPLE

        unknown, found = unknown_then_lookup(
            sim.tcp_url,
            record=UNKNOWN_SAMPLE,
            before_drop=lambda: sim.set_faults(FaultPlan(drop_after=3)),
            after_drop=lambda: (sim.set_faults(None), sim.wait_idle(10)),
        )
        print(UNKNOWN_SAMPLE, unknown, found.status)


if __name__ == "__main__":
    main()
