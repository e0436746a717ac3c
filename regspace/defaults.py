"""Defaults shared by the command line and the library, defined once (no imports: the CLI loads this at start)."""

STORE = "regspace-store"  # the store directory when --store / $REGSPACE_STORE is not given
HEARTBEAT_SECONDS = 30  # a training model's heartbeat: local claims and queue trials
GRACE_SECONDS = 120  # a queue trial without a heartbeat this long goes back to the queue
RECYCLE = 16  # models a worker process trains before a fresh one replaces it (bounds memory)
PROGRESS_LINE_SECONDS = 30  # off a terminal (batch jobs, nohup, CI): a plain progress line at most this often
EVAL_BATCH = 512  # images per evaluation step (at least the training batch)
