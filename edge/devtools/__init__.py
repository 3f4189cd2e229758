"""Developer and test tooling: everything here is for a workstation, CI or a demo, never for
the agent on a lane controller. ``lane run`` (and ``lane ingest``) import nothing from this
package; the `lane` commands that use it import it inside their command functions
(tests/unit/test_runtime_boundary.py holds both to that).

    harness.py      a whole simulated lane here: scenario simulators, a Mosquitto, the agent
    demo.py         `lane demo`: that lane, its crossings shown live, a summary against truth
    score.py        `lane score`: the crossings matched to the scenario's ground truth, scored
    score_cargo.py  `lane score`'s cargo part (containers, ADR, X-ray) when the truth has cargo
    checkpoint.py   a whole simulated checkpoint: N lanes, the site broker, PostgreSQL, ingest
    checkscore.py   `lane checkpoint sim|score`: the register against every lane's truth, faults
    subscriber.py   a consumer of lane topics into a queue (demo, score, `lane sim`, the tests)
    localbroker.py  a private Mosquitto on a free loopback port
    localdb.py      a private PostgreSQL in a temp directory
    localnats.py    a private NATS JetStream cluster on loopback
    synth.py        synthetic plates and scenes (recognition tests, benchmarks)

A wheel built with ``LANE_AGENT_WHEEL=runtime`` leaves this package and ``simulators`` out
(setup.py, docs/operations.md).
"""
