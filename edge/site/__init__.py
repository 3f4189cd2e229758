"""The checkpoint register: `lane ingest` and the pieces behind it.

    config.py     the ingest config (YAML, pydantic, secrets as references)
    intake.py     one MQTT message -> what it is (sans-I/O: topic, size, JSON, contract)
    register.py   PostgreSQL: migrations, the transaction that stores one message, gaps
    ingest.py     the process: paho (MQTT 5, persistent session, manual acks) + one writer

Data flow: broker -> paho thread -> bounded queue -> writer thread (owns the database
connection) -> commit -> PUBACK. docs/site.md says what each hop promises.

The simulated checkpoint (`lane checkpoint sim|score`) and the private PostgreSQL and NATS the
tests start are developer tooling: edge/devtools.
"""
