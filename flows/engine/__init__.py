# TRANSITIONAL: re-exports for wp-d-edges files; remove after merge
"""The engine: it moves batches of runs between nodes and lets customers in.

- batch.py: what a node kind sees — RunState, the version's Graph, the
  worker's EngineContext, the Batch and the verdicts (Exit, Wait, Stop,
  Complete);
- launch_limits.py: the flow's launch limit (who may enter, the atomic
  re-check before a run's first steps group);
- entry.py: audience entry (INSERT … SELECT) and the rules every start kind
  shares; the start kinds themselves match events and fire schedules
  (flows/nodes/event.py, flows/nodes/schedule/firing.py);
- actions.py: the steps node's actions, a whole group for a whole batch;
- move.py: claim (SKIP LOCKED), move through the node kinds, write back in
  bulk, fault isolation;
- ingestion.py: events from outside, stored and handed to the sweep;
- ab_winner.py: the A/B winner, tested and recorded on every tick;
- tick.py: one pass of everything that is due.

batch, launch_limits, entry and actions sit below the node kinds (the kinds
call them); move and tick sit above (they call the kinds). The contract in
.importlinter says so, module by module.
"""
