"""Sweeps across machines, through Optuna's storage (`--queue URL`).

A sweep is one Optuna study named ``regspace:<sweep>`` in the storage at URL, readable through
Optuna's public API and optuna-dashboard: each model is a trial whose user attributes hold its id,
space, flops, params and its whole store row (``model``), and whose value is the model's error.

- ``sample --queue`` enqueues new models as WAITING trials, in bulk;
- ``train --queue`` (on any number of machines) claims a waiting trial (WAITING → RUNNING through the
  storage, which locks the row), trains it, stores the result row in the trial and finishes it. A
  running trial sends heartbeats; one whose heartbeat is older than the grace period is failed and
  re-queued by Optuna's ``RetryHeartbeatStaleTrialCallback``. RDB storages use Optuna's heartbeat
  table; the journal file, which has none, keeps the heartbeat in a trial attribute;
- ``collect`` copies models and results into a local parquet store, incrementally.

Three layers, each importing only the ones above it:

- :mod:`regspace.sweep.backends`: what differs between storages (URL → backend: connect, heartbeats,
  stale trials, how many workers), retries while the database is unreachable;
- :mod:`regspace.sweep.index`: finding trials without loading the sweep (:class:`TrialIndex`);
- :mod:`regspace.sweep.adapter`: the Optuna adapter (:class:`Sweep`): take, report, heartbeat, fail
  stale, give back, counts, sweep attributes, a once-only set-up. It moves opaque JSON payloads and
  never imports training code, recipes or the store;
- :mod:`regspace.sweep.transfer`: between a store and a sweep: enqueue store rows (repeat draws,
  profiles), report result rows, collect into a store.

Recipe agreement (which recipe a sweep trains with) is the training side's:
:func:`regspace.train.recipe.agree_recipe`, on the adapter's sweep attributes.

URLs: ``postgresql://…`` (SQLAlchemy URL, many workers), ``sqlite:///path`` (one worker only:
Optuna's FAQ warns that SQLite can hand one trial to two workers), ``journal:///path/to/sweep.log``
or a path ending in .log/.journal (Optuna's journal file storage, for a shared file system).
"""
